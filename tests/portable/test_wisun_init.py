"""Wi-SUN driver: reset, echo off, version, ROPT/WOPT, credentials, join and its backoff."""
# Compiling edge/wisun.py from source needs ~150 KB of parser heap; a board runs it frozen,
# and test_driver_footprint_on_micropython bounds what the driver itself holds.
# mp-heap: 160K
from wisun_script import *  # noqa: F401,F403


# ------------------------------------------------------------------ init and join
def test_init_sequence_is_the_documented_command_list():
    d = WisunDriver(profile(), config())
    written, t = run_init(d)
    assert written == INIT_COMMANDS
    assert d.state == ST_JOIN and not d.can_send()
    d.feed(b"OK\r\n", t + 1)
    assert d.state == ST_JOIN  # the OK to SKJOIN is not the join
    d.feed(ev(0x25), t + 2)
    assert kinds(drain(d)) == [EV_GATE, EV_JOINED]
    assert d.version == "1.2.10" and d.app_version == "rev26e"
    assert d.payload_mode == MODE_HEX
    assert d.counters["wopt_writes"] == 0


def test_echo_before_echo_off_is_counted_not_unknown():
    d = WisunDriver(profile(), config())
    d.poll(0)
    d.feed(b"SKRESET\r\nOK\r\n", 1)
    assert d.poll(1) == b"SKSREG SFE 0\r\n"
    d.feed(b"SKSREG SFE 0\r\nOK\r\n", 2)
    assert d.poll(2) == b"SKVER\r\n"
    assert d.counters["echo_lines"] == 2 and d.counters["unknown_lines"] == 0
    assert [e for e in drain(d) if e[0] == EV_ERROR] == []  # echoes are normal, not faults


def test_wopt_is_written_only_when_ropt_reports_another_mode():
    d = WisunDriver(profile(), config())
    replies = INIT_REPLIES[:4] + (b"OK 00\r\n",)
    written, t = run_init(d, replies=replies)
    assert written[-1] == b"WOPT 01\r\n"
    d.feed(b"OK\r\n", t + 1)
    assert d.poll(t + 1).startswith(b"SKSETPWD ")
    assert d.counters["wopt_writes"] == 1 and d.payload_mode == MODE_HEX
    # already hex: no flash write
    d2 = WisunDriver(profile(), config())
    written2, _ = run_init(d2)
    assert b"WOPT 01\r\n" not in written2 and d2.counters["wopt_writes"] == 0


def test_wopt_can_be_forbidden_and_the_driver_runs_binary():
    d = WisunDriver(profile(), config(allow_wopt=False))
    replies = INIT_REPLIES[:4] + (b"OK 00\r\n",) + INIT_REPLIES[5:]
    written, t = run_init(d, replies=replies)
    assert b"WOPT 01\r\n" not in written
    assert d.payload_mode == MODE_BINARY


def test_ropt_refused_means_hex_only_and_a_profile_can_skip_it():
    d = WisunDriver(profile(), config())
    replies = INIT_REPLIES[:4] + (b"FAIL ER04\r\n",)
    written, t = run_init(d, replies=replies)
    assert written[-1].startswith(b"SKSETPWD ")
    assert d.payload_mode == MODE_HEX
    d2 = WisunDriver(profile(ropt=False, payload_modes=["hex"]), config())
    written2, _ = run_init(d2, replies=INIT_REPLIES[:4])
    assert b"ROPT\r\n" not in written2 and written2[-1].startswith(b"SKSETPWD ")


def test_appver_refused_or_silent_is_skipped():
    d = WisunDriver(profile(), config())
    written, t = run_init(d, replies=INIT_REPLIES[:3] + (b"FAIL ER04\r\n",))
    assert written[-1] == b"ROPT\r\n"
    d2 = WisunDriver(profile(), config())
    written2, t2 = run_init(d2, replies=INIT_REPLIES[:3])
    assert d2.poll(t2 + 101) == b"ROPT\r\n"  # SKAPPVER timed out: go on without it


def test_init_failure_reopens_after_backoff():
    d = WisunDriver(profile(), config())
    written, t = run_init(d, replies=INIT_REPLIES[:5] + (b"FAIL ER06\r\n",))
    assert d.state == ST_WAIT_REOPEN
    evs = drain(d)
    assert EV_REOPEN in kinds(evs)
    assert d.poll(t + 499) == b""
    assert d.poll(t + 1000) == b"SKRESET\r\n"  # backoff base 1000: delay in 500..1000


def test_silent_module_times_out_and_reopens():
    d = WisunDriver(profile(), config())
    assert d.poll(0) == b"SKRESET\r\n"
    assert d.poll(299) == b""
    d.poll(300)
    assert d.state == ST_WAIT_REOPEN and d.counters["timeouts"] == 1
    assert d.poll(1300) == b"SKRESET\r\n"


def test_join_failures_back_off_exponentially_then_reopen():
    d = WisunDriver(profile(), config(max_join_failures=3))
    _, t = run_init(d)
    delays = []
    for i in range(2):
        d.feed(b"OK\r\n" + ev(0x24), t)
        evs = drain(d)
        assert (EV_JOIN_FAILED, "rejected", i + 1) in evs
        assert d.state == ST_WAIT_REJOIN
        delays.append(d.deadline() - t)
        t = d.deadline()
        assert d.poll(t) == b"SKJOIN " + COORD.encode() + b"\r\n"
    assert delays == [500, 1000]  # rand=None: the lower edge of each jitter window
    d.feed(ev(0x24), t)
    assert d.state == ST_WAIT_REOPEN
    assert (EV_REOPEN, "join_failures", None) in drain(d)
    assert d.poll(d.deadline()) == b"SKRESET\r\n"


def test_join_timeout_is_a_join_failure():
    d = WisunDriver(profile(), config())
    _, t = run_init(d)
    d.poll(t + 1000)
    assert (EV_JOIN_FAILED, "timeout", 1) in drain(d)
    assert d.state == ST_WAIT_REJOIN


def test_caller_random_int_sets_the_jitter():
    d = WisunDriver(profile(), config(), rand=lambda: 499)
    _, t = run_init(d)
    d.feed(ev(0x24), t)
    assert d.deadline() - t == 999


def test_a_version_that_is_not_text_is_counted_garbled_and_init_goes_on():
    d = WisunDriver(profile(), config())
    d.poll(0)
    d.feed(b"OK\r\n", 1)
    d.poll(1)
    d.feed(b"OK\r\n", 2)
    assert d.poll(2) == b"SKVER\r\n"
    d.feed(b"EVER \xff\xfe\r\nOK\r\n", 3)  # used to raise UnicodeDecodeError out of feed()
    assert d.version is None and d.counters["garbled_lines"] == 1
    assert d.poll(3) == b"SKAPPVER\r\n"
