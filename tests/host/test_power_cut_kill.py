"""Real kills: a child process appends, acks and persists to a real directory through
firmware/lib/flash_store.py and is killed with SIGKILL at random moments, hundreds of times.

The child prints an intent line before each durable operation and a done line after it
returns, so the parent knows what is committed and what is in doubt. After every restart the
child reports what it recovered and the parent checks: no committed slot lost (it is queued,
acknowledged, or inside a counted overflow range), no acknowledged slot ever delivered again,
values exact, the sequence counter strictly above every number it printed, the integrator
state equal to the last committed save (or the one in doubt), and a slot queued exactly when
the state saved with it survived (edge.slot_queue.SlotCheckpoint). The same child runs
under CPython and under the MicroPython unix port. A long run (marker `fuzz`):
    SMETER_KILLS=2000 .venv/bin/python -m pytest -q -m fuzz tests/host/test_power_cut_kill.py
"""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, micropython_or_fail
from host_tools import micropython

CHILD = r'''
import sys
from flash_store import FlashStore
from edge.slot_queue import SlotCheckpoint, SlotQueue
from edge.persist import SeqCounter


def rec(slot):
    return (slot, (slot * 7919) % 100000, (slot * 104729) % 50000, slot & 0xFFFF)


def state_of(gen):
    return [gen, (gen * 1000003) % (1 << 30), -gen, (gen * 7919) % (1 << 30) - (1 << 30)]


def emit(*parts):
    sys.stdout.write(" ".join([str(p) for p in parts]) + "\n")


d = sys.argv[1]
cap = int(sys.argv[2])
x = int(sys.argv[3])
st = FlashStore(d)
q = SlotQueue(st, cap)
seq = SeqCounter(st, "seq", 4)
cp = SlotCheckpoint(st, 4)
out = [0, 0, 0, 0]
loaded = cp.restore(q, out)
live = q.peek(1 << 20)
emit("B", *["%d:%d:%d:%d" % r for r in live])
ov = q.overflow()
emit("O", *(ov if ov else ()))
emit("T", q.tail)
if loaded:
    emit("I", *out)
    gen = out[0]
else:
    emit("I")
    gen = 0
emit("Q", seq.next())
emit("R")
slot = q.tail + 1 if q.tail >= 0 else 1000
delivered = []
while True:
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    r = (x >> 8) % 100
    if r < 40:
        s = slot
        slot += 1 + (x >> 16) % 2
        gen += 1
        emit("a", s, gen)
        cp.commit(q, state_of(gen), *rec(s))
        emit("A", s, gen)
    elif r < 60:
        delivered = [t[0] for t in q.peek(1 + (x >> 16) % 4)]
        emit("D", *delivered)
    elif r < 80:
        picks = []
        for i in range(len(delivered)):
            if (x >> (10 + i)) & 1:
                picks.append(delivered[i])
        if picks and (x >> 20) & 1:
            picks.append(picks[0])
            picks.reverse()
        emit("k", *picks)
        q.ack(picks)
        emit("K", *picks)
    elif r < 88:
        gen += 1
        emit("s", gen)
        cp.save(state_of(gen))
        emit("S", gen)
    elif r < 95:
        emit("Q", seq.next())
    else:
        ov = q.overflow()
        if ov:
            emit("v", ov[0], ov[1], ov[2], ov[3])
            q.ack_overflow(ov[0], ov[1])
            emit("V", ov[0], ov[1], ov[2], ov[3])
'''


def rec(slot):
    return (slot, (slot * 7919) % 100000, (slot * 104729) % 50000, slot & 0xFFFF)


def state_of(gen):
    return [gen, (gen * 1000003) % (1 << 30), -gen, (gen * 7919) % (1 << 30) - (1 << 30)]


class Parent:
    """What the parent knows from the child's printed lines, and the checks on each boot."""

    def __init__(self):
        self.appended = set()
        self.maybe_app = set()
        self.acked = set()
        self.maybe_acked = set()
        self.ranges = []  # overflow ranges the child reported and cleared
        self.maybe_range = None
        self.gen = 0
        self.maybe_gen = None
        self.seq_max = -1
        self.boots = 0
        self.checked_boots = 0

    def covered(self, s, ov):
        if ov and ov[2] <= s <= ov[3]:
            return True
        return any(a <= s <= b for a, b in self.ranges)

    def boot(self, lines):
        """Lines B, O, T, I, Q, R of one boot; returns False if the kill came before R."""
        head = {}
        for ln in lines[:6]:
            f = ln.split()
            head[f[0]] = [int(v) for v in f[1:]] if f[0] != "B" else f[1:]
        if "R" not in head:
            return False
        live = []
        for item in head["B"]:
            r = tuple(int(v) for v in item.split(":"))
            assert r == rec(r[0]), "values changed: %r" % (r,)
            live.append(r[0])
        assert live == sorted(set(live)), "out of order or duplicated: %r" % live
        bad = set(live) & self.acked
        assert not bad, "acknowledged slots came back: %r" % sorted(bad)
        assert set(live) <= self.appended | self.maybe_app, "slot from nowhere"
        ov = head["O"] or None
        if self.maybe_range is not None:
            # ack_overflow in doubt: a range no longer reported was cleared
            if ov is None or ov[0] != self.maybe_range[0]:
                self.ranges.append(self.maybe_range[2:4])
            self.maybe_range = None
        if ov:
            assert ov[2] <= ov[3] and 0 < ov[1] <= ov[3] - ov[2] + 1, ov
        for s in self.appended - self.acked - self.maybe_acked:
            assert s in live or self.covered(s, ov), "slot %d lost" % s
        tail = head["T"][0]
        assert not self.appended or tail >= max(self.appended)
        self.acked |= self.maybe_acked - set(live)
        self.maybe_acked = set()
        state = head["I"]
        if self.maybe_gen is not None and state and state[0] == self.maybe_gen:
            self.gen = self.maybe_gen
            # a commit in doubt that saved its state has its slot queued (or counted)
            for s in self.maybe_app:
                assert s in live or self.covered(s, ov), "state saved, slot %d missing" % s
                self.appended.add(s)
        else:
            assert not (self.maybe_app & set(live)), "slot queued without its state"
        self.maybe_app = set()
        self.maybe_gen = None
        if self.gen == 0:
            assert state == [], "state from nowhere: %r" % state
        else:
            assert state == state_of(self.gen), "state %r, expected gen %d" % (state, self.gen)
        q = head["Q"][0]
        assert q > self.seq_max, "sequence number %d repeated (max %d)" % (q, self.seq_max)
        self.seq_max = q
        self.checked_boots += 1
        return True

    def run_lines(self, lines):
        for ln in lines:
            f = ln.split()
            op, args = f[0], [int(v) for v in f[1:]]
            if op == "a":
                self.maybe_app = {args[0]}
                self.maybe_gen = args[1]
            elif op == "A":
                self.appended.add(args[0])
                self.gen = args[1]
                self.maybe_app = set()
                self.maybe_gen = None
            elif op == "D":
                bad = set(args) & self.acked
                assert not bad, "delivered after ack: %r" % sorted(bad)
            elif op == "k":
                self.maybe_acked = set(args)
            elif op == "K":
                self.acked |= set(args)
                self.maybe_acked = set()
            elif op == "s":
                self.maybe_gen = args[0]
            elif op == "S":
                self.gen = args[0]
                self.maybe_gen = None
            elif op == "Q":
                assert args[0] > self.seq_max
                self.seq_max = args[0]
            elif op == "v":
                self.maybe_range = args
            elif op == "V":
                self.ranges.append((args[2], args[3]))
                self.maybe_range = None


def kill_loop(cmd_prefix, env, directory, kills, capacity, seed):
    rng = random.Random(seed)
    parent = Parent()
    script = os.path.join(directory, "child.py")
    with open(script, "w") as f:
        f.write(CHILD)
    data = os.path.join(directory, "flash")
    err_file = open(os.path.join(directory, "stderr"), "w+b")
    for i in range(kills):
        err_file.seek(0)
        err_file.truncate()
        cmd = cmd_prefix + [script, data, str(capacity), str(rng.randrange(1 << 30))]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, env=env)
        early = rng.random() < 0.1
        if not early:
            # wait until the child is in its loop, then let it run for a random while
            buf = b""
            while not buf.endswith(b"R\n"):
                chunk = p.stdout.readline()
                if not chunk:
                    break
                buf += chunk
            time.sleep(rng.random() * 0.02)
        else:
            buf = b""
            time.sleep(rng.random() * 0.06)
        p.send_signal(signal.SIGKILL)
        # read through the same buffered reader: readline() may hold bytes already
        rest = p.stdout.read()
        p.stdout.close()
        p.wait()
        text = (buf + rest).decode()
        if p.returncode != -signal.SIGKILL:
            err_file.seek(0)
            raise AssertionError("child ended on its own:\n" + text + err_file.read().decode())
        lines = text.split("\n")[:-1]  # the last piece is an unfinished line (or empty)
        parent.boots += 1
        if parent.boot(lines):
            parent.run_lines(lines[6:])
    return parent


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "firmware", "lib")])
    return env


def mp_env():
    return micropython.path_env([ROOT, os.path.join(ROOT, "firmware", "lib")])


def check(parent, kills):
    assert parent.boots == kills
    assert parent.checked_boots >= kills * 0.8
    assert len(parent.appended) > kills // 4  # the loop did real work between kills
    assert parent.acked
    assert parent.ranges  # overflow happened and was reported and cleared


# Kills per runtime: a CI-sized sample by default, e.g. SMETER_KILLS=2000 for a long run.
KILLS = int(os.environ.get("SMETER_KILLS", "0"))


@pytest.mark.fuzz
def test_sigkill_cpython(tmp_path):
    n = KILLS or 110
    p = kill_loop([sys.executable, "-S", "-u"], python_env(), str(tmp_path), n, 6, KILLS + 1)
    check(p, n)


@pytest.mark.fuzz
@pytest.mark.micropython
def test_sigkill_micropython(tmp_path):
    exe = micropython_or_fail()
    n = KILLS or 90
    p = kill_loop([exe, "-X", "heapsize=128K"], mp_env(), str(tmp_path), n, 6, KILLS + 2)
    check(p, n)
