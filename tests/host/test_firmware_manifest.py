"""firmware/manifest.py freezes everything the board entry points need and nothing else of
edge/ (host-only modules such as edge/replay_core.py and edge/memstore.py stay out).

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
                p = os.path.join(dirpath, n)
                if not n.endswith(".py"):
                    continue
                if files is not None and os.path.relpath(p, root) not in files:
                    continue
                rel = os.path.relpath(p, os.path.join(base_dir, base_path))
                frozen[rel[:-3].replace(os.sep, ".").replace(".__init__", "")] = p
        for f in files or ():
            assert os.path.isfile(os.path.join(root, f)), "manifest names a missing file %s" % f

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
            out.update(node.module + "." + a.name for a in node.names)  # from edge import seal
    return out


def repo_module(name):
    """Path of a repository module importable on a board, or None (stdlib/builtin)."""
    for cand in (os.path.join(ROOT, *name.split(".")) + ".py",
                 os.path.join(FW, name + ".py"), os.path.join(FW, "lib", name + ".py"),
                 os.path.join(FW, "boards", "MPS2_AN385", "modules", name + ".py")):
        if os.path.isfile(cand):
            return cand
    return None


# What each board runs first: esp32/rp2 main.py, the QEMU board's start-up, the unix port's.
ENTRY_POINTS = [os.path.join(FW, "esp32", "main.py"), os.path.join(FW, "rp2", "main.py"),
                os.path.join(FW, "boards", "MPS2_AN385", "modules", "board_mps2.py"),
                os.path.join(FW, "unix", "main.py")]


def board_closure():
    """Repository modules the entry points import, directly or inside a function (a lazy
    import still runs on some board: modbus_tcp on a TCP device)."""
    todo, seen = list(ENTRY_POINTS), set()
    while todo:
        for name in imports_of(todo.pop()):
            src = repo_module(name)
            if src is not None and name not in seen:
                seen.add(name)
                todo.append(src)
    return seen


def test_manifest_freezes_exactly_the_edge_modules_boards_run():
    frozen, inc = {}, []
    evaluate(os.path.join(FW, "manifest.py"), frozen, inc)
    run = {n for n in board_closure() if n.startswith("edge.")} | {"edge"}
    froz = {n for n in frozen if n == "edge" or n.startswith("edge.")}
    assert not run - froz, "edge modules a board imports but the manifest misses: %s" % sorted(run - froz)
    assert not froz - run, "edge modules frozen that no board imports: %s" % sorted(froz - run)
    # the host-only ones stay out (test storage, the replay CLI's core)
    assert "edge.memstore" not in froz and "edge.replay_core" not in froz


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
