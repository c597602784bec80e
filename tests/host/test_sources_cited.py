"""Regulatory numbers cite sources an auditor can follow (docs/sources.md): no data file or
page points at documents outside the repository, and every *source* text in hw/ names a
public address or the digest page."""
import glob
import json
import os

from conftest import ROOT

OUTSIDE = ("DOMAIN.md", "/work/", "../shared/seeds", "../shared/DOMAIN")  # ../shared/vendor is a build input


def _files():
    for pattern in ("hw/*.json", "hw/tso/*.json", "docs/*.md", "docs/commands/*.md", "README.md"):
        yield from glob.glob(os.path.join(ROOT, pattern))


def test_nothing_cites_a_document_outside_the_repository():
    bad = []
    for path in _files():
        text = open(path, encoding="utf-8").read()
        bad += ["%s: %s" % (os.path.relpath(path, ROOT), w) for w in OUTSIDE if w in text]
    assert not bad, bad


def _sources(obj, where=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if (k == "source" or k.endswith("_source")) and isinstance(v, str):
                yield where + "." + k, v
            else:
                yield from _sources(v, where + "." + k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _sources(v, "%s[%d]" % (where, i))


def test_every_price_and_rule_source_is_public_or_digested():
    for name in ("hw/tso/prices.json", "hw/tso/rules.json"):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            doc = json.load(f)
        for where, text in _sources(doc):
            followable = "https://" in text or "docs/sources.md" in text
            # the project's own choices say so: no outside source to follow
            own = any(w in text.lower() for w in ("implementation", "assumption",
                                                  "not a regulation"))
            assert followable or own, (name, where, text)
