"""docs/glossary.md defines what the code cites: every glossary anchor cited in the repository
names a heading of the page, and a module that names a seed document or one of its 論点
(issues) says where the term is defined."""
import os
import re
import subprocess

import pytest

from conftest import ROOT

GLOSSARY = os.path.join(ROOT, "docs", "glossary.md")
# Terms defined only in the glossary: a module citing one cites the page too.
UNDEFINED_ELSEWHERE = re.compile(r"seed 00[04]|論点", re.I)


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#{1,6} (.+)", line)
            if m:
                text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
                out.add(text.replace(" ", "-"))
    return out


def tracked(*exts):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [f for f in files if f.endswith(exts)]


def test_anchor_rule_matches_github():
    assert {"seed-documents", "high-4-of-5", "slot"} <= anchors(GLOSSARY)


def test_every_cited_glossary_anchor_exists():
    defined = anchors(GLOSSARY)
    cited = {}
    for rel in tracked(".py", ".c", ".md", ".json"):
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
            for a in re.findall(r"glossary\.md#([\w\-]+)", f.read()):
                cited.setdefault(a, []).append(rel)
    assert cited, "nothing cites the glossary"
    missing = {a: files for a, files in cited.items() if a not in defined}
    assert missing == {}, "cited but not defined in docs/glossary.md: %s" % missing


@pytest.mark.parametrize("top", ["edge", "host_tools", "firmware", "scripts"])
def test_code_naming_a_seed_cites_the_glossary(top):
    bad = []
    for rel in tracked(".py", ".c"):
        if not rel.startswith(top + "/"):
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            text = f.read()
        if UNDEFINED_ELSEWHERE.search(text) and "docs/glossary.md" not in text:
            bad.append(rel)
    assert bad == [], "name a seed document or 論点 without citing docs/glossary.md: %s" % bad
