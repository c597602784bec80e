"""The host side's layout stays as docs/architecture.md draws it: one module per `smeter`
subcommand under host_tools/commands/, commands importing library code only (never another
command), library code never importing a command, and one home for driving MicroPython."""
import ast
import os

import pytest

from conftest import ROOT
from host_tools import cli

COMMANDS_DIR = os.path.join(ROOT, "host_tools", "commands")


def python_files(top):
    for dirpath, dirnames, files in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".venv")]
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def imported_modules(path):
    """Every module name an import statement in path names (absolute imports: the project
    uses no relative ones), including `from pkg import mod` as pkg.mod."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for a in node.names:
                yield node.module + "." + a.name


def command_modules():
    return sorted(f[:-3] for f in os.listdir(COMMANDS_DIR)
                  if f.endswith(".py") and f != "__init__.py")


def test_every_subcommand_has_its_module_under_commands():
    assert sorted(cli.COMMANDS) == sorted("host_tools.commands." + m for m in command_modules())
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    # one module per subcommand: its file name is the subcommand's, '-' spelled '_'
    assert sorted(n.replace("-", "_") for n in sub.choices) == command_modules()


def test_no_command_shells_left_beside_the_library():
    left = [f for f in os.listdir(os.path.join(ROOT, "host_tools")) if f.endswith("_cmd.py")]
    assert left == [], "command shells belong in host_tools/commands/: %s" % left


@pytest.mark.parametrize("name", command_modules())
def test_a_command_imports_no_other_command(name):
    own = "host_tools.commands." + name
    others = [m for m in imported_modules(os.path.join(COMMANDS_DIR, name + ".py"))
              if m.startswith("host_tools.commands") and m != own]
    assert others == [], "%s imports %s: move the shared code into a library module" % (own, others)


def test_library_code_imports_no_command():
    bad = []
    for path in python_files("host_tools"):
        rel = os.path.relpath(path, ROOT)
        if rel.startswith(os.path.join("host_tools", "commands")) or rel == os.path.join("host_tools", "cli.py"):
            continue
        bad += ["%s: %s" % (rel, m) for m in imported_modules(path)
                if m.startswith("host_tools.commands")]
    assert bad == []


def test_one_home_for_finding_micropython():
    """host_tools/micropython.py finds the interpreter for the commands, the demo and the
    tests alike; a second search (its own PATH lookup) could pick another one."""
    needle = "which(" + '"micropython")'  # split, so this file is not a match
    homes = []
    for top in ("host_tools", "tests", "firmware", "scripts"):
        for path in python_files(top):
            with open(path, encoding="utf-8") as f:
                if needle in f.read():
                    homes.append(os.path.relpath(path, ROOT))
    assert homes == [os.path.join("host_tools", "micropython.py")]
