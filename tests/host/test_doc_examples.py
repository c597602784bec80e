"""Examples in docs/ that are marked as tested run here, and what they print must match.

A fenced block right after the line `<!-- tested example -->` holds commands (`$ smeter ...`,
`\\` continues a line) each followed by its expected stdout; a line `...` stands for any
number of lines. The blocks of one page run in order in one temporary directory (so a
later command can use an earlier one's output) with `samples/` linked in. Only stdout is
compared: stderr carries timings. Docs/commands/conventions.md says how to mark one.
"""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

MARK = "<!-- tested example -->"


def examples(path):
    """[(command argv, expected lines)] of the marked blocks of one page, in order."""
    text = open(path, encoding="utf-8").read()
    out = []
    for m in re.finditer(re.escape(MARK) + r"\s*\n```[a-z]*\n(.*?)\n```", text, re.S):
        cmd = None
        lines = m.group(1).split("\n")
        i = 0
        while i < len(lines):
            ln = lines[i]
            if ln.startswith("$ "):
                full = ln[2:]
                while full.endswith("\\"):
                    i += 1
                    full = full[:-1] + " " + lines[i].strip()
                cmd = (shlex.split(full), [])
                out.append(cmd)
            elif cmd is not None:
                cmd[1].append(ln)
            i += 1
    return out


def matches(expected, got):
    """Line-by-line match where '...' in expected takes any run of lines (also none)."""
    if not expected:
        return not got
    if expected[0] == "...":
        return any(matches(expected[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and expected[0].rstrip() == got[0].rstrip() and matches(expected[1:], got[1:])


PAGES = sorted(p for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
               if MARK in open(p, encoding="utf-8").read())


def test_some_pages_carry_tested_examples():
    names = {os.path.relpath(p, ROOT) for p in PAGES}
    assert {"docs/commands/settle.md", "docs/commands/correct.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_example_prints_what_the_page_says(page, tmp_path):
    os.symlink(os.path.join(ROOT, "samples"), tmp_path / "samples")
    env = dict(os.environ, PYTHONPATH=ROOT)
    for argv, expected in examples(page):
        assert argv[0] == "smeter", argv
        p = subprocess.run([sys.executable, "-m", "host_tools.cli"] + argv[1:], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (argv, p.stderr[-2000:])
        got = p.stdout.rstrip("\n").split("\n") if p.stdout else []
        assert matches(expected, got), "%s printed:\n%s" % (" ".join(argv), p.stdout)


def test_the_matcher():
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert matches(["a", "...", "z"], ["a", "z"])
    assert not matches(["a", "...", "z"], ["a", "b"])
    assert not matches(["a", "b"], ["a", "c"])
    assert matches([], [])
