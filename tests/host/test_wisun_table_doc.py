"""docs/wisun.md#transitions prints the driver's TRANSITIONS table: keep the two equal.

`python tests/host/test_wisun_table_doc.py` prints the table to paste after a change.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from edge import wisun  # noqa: E402

DOC = os.path.join(ROOT, "docs", "wisun.md")
BEGIN = "<!-- transitions: generated from edge/wisun.py TRANSITIONS -->"
END = "<!-- end transitions -->"


def render():
    """The TRANSITIONS rows as a Markdown table."""
    out = ["| state | input | next | gate | counter | action |",
           "| --- | --- | --- | --- | --- | --- |"]
    seen = set()
    for states, inp, nxt, gate, counter, action in wisun.TRANSITIONS:
        if states:
            who = ", ".join(wisun.STATE_NAMES[s] for s in states)
        else:
            who = "any other" if inp in seen else "any"
        seen.add(inp)
        if nxt == wisun.NX_SAME:
            where = "="
        elif nxt == wisun.NX_ACTION:
            where = "(action)"
        else:
            where = wisun.STATE_NAMES[nxt]
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            who, wisun.INPUT_NAMES[inp], where, wisun.GATE_CHANGE_NAMES[gate],
            "`%s`" % counter if counter else "",
            "`%s`" % wisun.ACTION_NAMES[action] if action else ""))
    return "\n".join(out)


def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_the_doc_table_is_the_code_table():
    text = doc_text()
    assert BEGIN in text and END in text, "docs/wisun.md lost its transition table markers"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == render(), (
        "docs/wisun.md#transitions differs from edge/wisun.py TRANSITIONS; paste:\n" + render())


def test_every_action_and_input_is_explained_in_the_doc():
    text = doc_text()
    actions = text.split("### Actions", 1)[1].split("\n## ", 1)[0]
    for name in wisun.ACTION_NAMES[1:]:
        assert re.search(r"^\| [^|]*`%s`[^|]*\|" % name, actions, re.M), name
    assert len(set(wisun.ACTION_NAMES)) == len(wisun.ACTION_NAMES)
    assert len(wisun.INPUT_NAMES) == len(set(wisun.INPUT_NAMES))


def test_each_state_input_pair_has_one_row_or_cannot_occur():
    # send() and poll() check the state first: only ready sends, only idle starts
    send, start = wisun.INPUT_NAMES.index("send()"), wisun.INPUT_NAMES.index("poll()")
    impossible = {(s, send) for s in range(len(wisun.STATE_NAMES)) if s != wisun.ST_READY}
    impossible |= {(s, start) for s in range(len(wisun.STATE_NAMES)) if s != wisun.ST_IDLE}
    for s in range(len(wisun.STATE_NAMES)):
        for i in range(len(wisun.INPUT_NAMES)):
            row = wisun.transition(s, i)
            assert (row is None) == ((s, i) in impossible), (
                wisun.STATE_NAMES[s], wisun.INPUT_NAMES[i])
    # and every row is reachable: none hidden behind an earlier one
    used = {wisun.transition(s, i) for s in range(len(wisun.STATE_NAMES))
            for i in range(len(wisun.INPUT_NAMES))}
    for row in wisun.TRANSITIONS:
        assert row in used, row


if __name__ == "__main__":
    print(render())
