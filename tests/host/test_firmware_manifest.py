"""firmware/manifest.py freezes everything the board entry points need, and all of edge/.

The manifest is evaluated with recording stand-ins for the manifest functions (the real ones
live in MicroPython's build tools), then every repository module that the frozen modules and
firmware/<port>/main.py import, directly or indirectly, must be among the frozen files.
"""
import ast
import os

import pytest

from conftest import ROOT

FW = os.path.join(ROOT, "firmware")


def evaluate(path, frozen, included):
    base_dir = os.path.dirname(path)

    def metadata(**kw):
        assert kw.get("version"), "metadata(version=...) is required"

    def package(name, files=None, base_path=".", opt=None):
        root = os.path.normpath(os.path.join(base_dir, base_path, name))
        assert os.path.isdir(root), root
        for dirpath, _, names in os.walk(root):
            for n in names:
                if n.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, n), os.path.join(base_dir, base_path))
                    frozen[rel[:-3].replace(os.sep, ".").replace(".__init__", "")] = os.path.join(dirpath, n)

    def module(name, base_path=".", opt=None):
        p = os.path.normpath(os.path.join(base_dir, base_path, name))
        assert os.path.isfile(p), p
        frozen[os.path.basename(name)[:-3]] = p

    def include(p):
        if p.startswith("$(PORT_DIR)"):
            included.append(p)
            return
        evaluate(os.path.normpath(os.path.join(base_dir, p)), frozen, included)

    with open(path, encoding="utf-8") as f:
        code = f.read()
    exec(compile(code, path, "exec"), {"metadata": metadata, "package": package, "module": module,
                                        "include": include, "require": lambda *a, **k: None})


def imports_of(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def repo_module(name):
    """Path of a repository module importable on a board, or None (stdlib/builtin)."""
    for cand in (os.path.join(ROOT, *name.split(".")) + ".py",
                 os.path.join(FW, name + ".py"), os.path.join(FW, "lib", name + ".py")):
        if os.path.isfile(cand):
            return cand
    return None


def test_manifest_freezes_all_of_edge():
    frozen, inc = {}, []
    evaluate(os.path.join(FW, "manifest.py"), frozen, inc)
    edge = {"edge." + f[:-3] for f in os.listdir(os.path.join(ROOT, "edge")) if f.endswith(".py")}
    edge = {e.replace("edge.__init__", "edge") for e in edge}
    missing = edge - set(frozen)
    assert not missing, "edge modules not frozen: %s" % sorted(missing)


@pytest.mark.parametrize("port", ["esp32", "rp2"])
def test_board_manifest_covers_every_import_of_its_main(port):
    frozen, inc = {}, []
    evaluate(os.path.join(FW, port, "manifest.py"), frozen, inc)
    assert inc == ["$(PORT_DIR)/boards/manifest.py"]  # the port's own modules (asyncio, ...)
    todo = [os.path.join(FW, port, "main.py")]
    seen = set()
    while todo:
        p = todo.pop()
        for name in imports_of(p):
            src = repo_module(name)
            if src is None or name in seen:
                continue
            seen.add(name)
            assert name in frozen, "%s imports %s, which the manifest does not freeze" % (p, name)
            todo.append(src)
    assert {"agent_main", "edge.agent", "edge.wisun", "flash_store", "ports", "clocks"} <= seen
