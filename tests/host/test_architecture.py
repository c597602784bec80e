"""docs/architecture.md stays true: every path it names exists, and every function or class
its step table names is defined in the file of that row."""
import ast
import os
import re

import pytest

from conftest import ROOT

PAGE = os.path.join(ROOT, "docs", "architecture.md")
# `edge/agent.py`, `host_tools/commands/`, `hw/maps/`: a code span naming a repository path
PATH = re.compile(r"`((?:edge|firmware|host_tools|hw|tests|docs|samples|scripts)/[\w./<>-]*)`")
# | 7 | `edge/integrator.py` | `Integrator.feed` | ...
ROW = re.compile(r"^\| *(\d+) *\| *`([^`]+)` *\| *`([\w.]+)` *\|", re.M)


def page():
    with open(PAGE, encoding="utf-8") as f:
        return f.read()


def named_paths():
    # a placeholder segment (commands/<subcommand>.py) names the folder
    return sorted({p.split("<")[0] for p in PATH.findall(page())})


def defined_names(path):
    """Top-level functions and classes of a Python file, and Class.method for their methods;
    for a C file, nothing (steps name Python files)."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        if isinstance(node, ast.ClassDef):
            out.update(node.name + "." + n.name for n in node.body
                       if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return out


def test_the_page_names_paths_and_steps():
    assert len(named_paths()) > 20
    assert len(ROW.findall(page())) >= 15


@pytest.mark.parametrize("path", named_paths())
def test_every_named_path_exists(path):
    assert os.path.exists(os.path.join(ROOT, path)), (
        "docs/architecture.md names %s, which does not exist: update the page" % path)


@pytest.mark.parametrize("step, path, name", ROW.findall(page()))
def test_every_step_names_a_definition_in_its_file(step, path, name):
    assert os.path.isfile(os.path.join(ROOT, path)), "step %s: no file %s" % (step, path)
    assert name in defined_names(path), (
        "docs/architecture.md step %s: %s defines no %s: update the page" % (step, path, name))


def test_steps_are_numbered_in_order():
    steps = [int(s) for s, _, _ in ROW.findall(page())]
    assert steps == list(range(1, len(steps) + 1))
