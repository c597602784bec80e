"""Wi-SUN driver: session and rate gates, and lines that arrive garbled, truncated or interleaved."""
# Compiling edge/wisun.py from source needs ~150 KB of parser heap; a board runs it frozen,
# and test_driver_footprint_on_micropython bounds what the driver itself holds.
# mp-heap: 160K
from wisun_script import *  # noqa: F401,F403


# ------------------------------------------------------------------ gates
def test_session_gate_closes_on_26_27_28_29_and_opens_on_25():
    for num in (0x26, 0x27, 0x28, 0x29):
        d = gates_after(num)
        assert not d.session_open and not d.can_send()
        d.feed(ev(0x25), 1000)
        assert d.session_open and d.can_send(), num


def test_rate_gate_closes_on_32_and_opens_on_33():
    d = gates_after(0x32)
    assert not d.rate_open and not d.can_send() and d.session_open
    d.feed(ev(0x33), 1000)
    assert d.rate_open and d.can_send()


def test_gates_are_independent_and_idempotent():
    # both must be open; a repeated close needs one open; a spurious open is harmless
    assert not gates_after(0x32, 0x29, 0x33).can_send()
    assert not gates_after(0x32, 0x29, 0x25).can_send()
    assert not gates_after(0x29, 0x32, 0x25).can_send()
    assert not gates_after(0x29, 0x32, 0x33).can_send()
    for order in ((0x32, 0x29, 0x33, 0x25), (0x32, 0x29, 0x25, 0x33),
                  (0x29, 0x32, 0x33, 0x25), (0x29, 0x32, 0x25, 0x33)):
        assert gates_after(*order).can_send(), order
    assert gates_after(0x29, 0x29, 0x25).can_send()
    assert gates_after(0x32, 0x32, 0x33).can_send()
    assert gates_after(0x25).can_send() and gates_after(0x33).can_send()


def test_gate_changes_are_reported_once_per_change():
    d, t = joined()
    d.feed(ev(0x32) + ev(0x32) + ev(0x33) + ev(0x29) + ev(0x29) + ev(0x25), t)
    gates = [(e[1], e[2]) for e in drain(d) if e[0] == EV_GATE]
    assert gates == [(GATE_RATE, False), (GATE_RATE, True), (GATE_SESSION, False),
                     (GATE_SESSION, True)]


def test_lifetime_expiry_waits_for_the_modules_reauth_then_rejoins_itself():
    d, t = joined()
    d.feed(ev(0x29), t)
    assert d.state == ST_REAUTH
    d.poll(t + 800)  # no EVENT 25 within the reauth time: rejoin with backoff
    assert d.state == ST_WAIT_REJOIN
    assert d.poll(d.deadline()) == b"SKJOIN " + COORD.encode() + b"\r\n"
    d.feed(b"OK\r\n" + ev(0x25), d.deadline() or t + 2000)
    assert d.can_send()
    # a failed reauth (EVENT 24 after 29) also rejoins
    d.feed(ev(0x29) + ev(0x24), t + 3000)
    assert d.state == ST_WAIT_REJOIN and not d.can_send()


def test_session_end_rejoins_after_backoff():
    d, t = joined()
    d.feed(ev(0x27), t)
    assert d.state == ST_WAIT_REJOIN
    assert d.poll(t + 499) == b""
    assert d.poll(t + 500) == b"SKJOIN " + COORD.encode() + b"\r\n"


def test_rate_gate_reopens_by_itself_if_event_33_is_lost():
    d, t = joined()
    d.feed(ev(0x32), t)
    assert d.deadline() == t + 5000
    d.poll(t + 5000)
    assert d.rate_open and d.can_send() and d.counters["rate_gate_timeouts"] == 1


def test_session_events_during_a_send_apply_after_it():
    d, t = joined()
    d.send(b"x", 1, t)
    d.feed(b"OK\r\n" + ev(0x29), t + 1)
    assert d.state == ST_SENDING
    d.feed(ev(0x21, 0), t + 2)
    assert (EV_SEND_OK, 1, None) in drain(d)
    assert d.state == ST_REAUTH
    d.feed(ev(0x25), t + 3)
    assert d.can_send()
    d.send(b"y", 2, t + 4)
    d.feed(b"OK\r\n" + ev(0x24), t + 5)
    d.feed(ev(0x21, 1), t + 6)
    assert (EV_SEND_FAILED, 2, "tx_failed") in drain(d)
    assert d.state == ST_WAIT_REJOIN


# ------------------------------------------------------------------ robustness
def test_garbled_truncated_and_interleaved_lines_never_break_a_send():
    d, t = joined()
    d.send(b"x", "a", t)
    stream = (
        b"\x00\xff\xfeGARBAGE\r\n"  # binary junk
        b"OK 1\r\n"  # looks like an ROPT answer, arrives in the wrong state
        b"EVENT\r\n"  # truncated event
        b"EVENT 2\r\n"
        b"EVENT ZZ " + COORD.encode() + b"\r\n"
        b"FAIL ER\r\n"  # truncated FAIL
        b"FAIL ERXX\r\n"
        + erx(9, "0102")  # an interleaved reception
        + b"OK\r\n"
        b"EVENT 21 " + COORD.encode() + b"\r\n"  # EVENT 21 without its param
        + ev(0x01)  # an event the driver does not use
        + ev(0x21, 0)
    )
    for i in range(0, len(stream), 3):  # odd chunking
        d.feed(stream[i:i + 3], t + 1)
    evs = drain(d)
    assert (EV_SEND_OK, "a", None) in evs
    assert (EV_UDP_RECEIVED, b"\x01\x02", (COORD, 0x0E1A)) in evs
    c = d.counters
    assert c["unknown_lines"] == 4 and c["garbled_lines"] == 3 and c["other_events"] == 1
    assert c["stray_ok"] == 1 and d.can_send()


def test_every_counted_problem_is_reported_as_an_error_event():
    d, t = joined()
    d.feed(b"junk\r\nmore junk\r\n", t)
    errs = [e for e in drain(d) if e[0] == EV_ERROR]
    assert errs == [(EV_ERROR, "unknown_lines", 1), (EV_ERROR, "unknown_lines", 2)]


def test_a_stale_partial_line_is_dropped_not_glued_to_the_next():
    d, t = joined()
    d.feed(b"ERXUDP " + COORD.encode() + b" FE80", t)  # the tail never comes
    d.feed(erx(9, "0A0B"), t + 201)
    evs = drain(d)
    assert (EV_UDP_RECEIVED, b"\x0a\x0b", (COORD, 0x0E1A)) in evs
    assert d.counters["stale_partials"] == 1 and d.counters["garbled_lines"] == 0


def test_overlong_lines_are_skipped_to_their_end():
    d, t = joined()
    d.feed(b"Q" * 1000, t)
    d.feed(b"Q" * 1000 + b"\r\n" + erx(9, "01"), t + 1)
    evs = drain(d)
    assert d.counters["overlong_lines"] == 1
    assert (EV_UDP_RECEIVED, b"\x01", (COORD, 0x0E1A)) in evs


def test_random_noise_never_raises_and_the_driver_recovers():
    d, t = joined()
    x = 7
    noise = bytearray(3000)
    for i in range(len(noise)):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        noise[i] = (x >> 16) & 0xFF
    i = 0
    while i < len(noise):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        k = 1 + (x >> 20) % 50
        d.feed(bytes(noise[i:i + k]), t)
        d.poll(t)
        i += k
    drain(d)
    # whatever state noise left it in, time and a clean module bring it back to a send
    for step in range(40):
        t += 600
        out = d.poll(t)
        if d.state == ST_JOIN and out:
            d.feed(b"OK\r\n" + ev(0x25), t)
        elif out and not d.can_send():
            reply = b"OK 01\r\n" if out == b"ROPT\r\n" else b"OK\r\n"
            d.feed(reply, t)
            d.poll(t)
        if d.can_send():
            break
        if d.state == ST_READY and not d.rate_open:
            d.feed(ev(0x33), t)
    drain(d)
    assert d.can_send()
    assert (EV_SEND_OK, 1, None) in send_ok(d, t)


def test_deadlines_survive_the_tick_wrap():
    start = (1 << 30) - 50
    d, t = joined()
    d.send(b"x", "w", start)
    assert d.deadline() == (start + 500) & ((1 << 30) - 1)
    d.poll(start + 100 - (1 << 30) + (1 << 30))  # still before the deadline
    assert d.state == ST_SENDING
    d.poll(449)  # wrapped tick: 50 + 449 = 499 ms later
    assert d.state == ST_SENDING
    d.poll(450)
    assert (EV_SEND_FAILED, "w", "timeout") in drain(d)


def test_event_queue_is_bounded():
    d, t = joined()
    d.feed(b"x\r\n" * 100, t)
    evs = drain(d)
    assert len(evs) == 32 and d.counters["events_dropped"] == 68
    assert d.counters["unknown_lines"] == 100


def test_reopen_on_request_resets_at_once():
    d, t = joined()
    d.reopen(t)
    assert d.poll(t) == b"SKRESET\r\n" and not d.can_send()


def test_bad_profiles_and_configs_raise_typed_errors():
    for bad in (profile(max_payload=0), profile(payload_modes=["ascii"]),
                profile(erxudp_fields=[12]), profile(sendto_side=2), profile(ropt="yes"),
                {"max_payload": 10}):
        try:
            check_profile(bad)
        except WisunProfileError as e:
            assert e.kind == "wisun_profile"
        else:
            assert False, bad
    for bad in (config(rbid="short"), config(pwd=""), config(pan_id=0x10000),
                config(channel="zz"), config(backoff_base_ms=0), config(pwd=12345),
                config(pwd="with space"), config(rbid="\u00e9" * 32), config(coordinator=""),
                config(channel=0x100), config(sec=3), [], None, "cfg"):
        try:
            WisunDriver(profile(), bad)
        except WisunConfigError as e:
            assert e.kind == "wisun_config"
        else:
            assert False, bad


def test_a_reopen_triggered_mid_chunk_keeps_parsing_the_rest_of_the_chunk():
    d = WisunDriver(profile(), config())
    _, t = run_init(d, replies=INIT_REPLIES[:5])
    # FAIL during init reopens; the lines after it in the same read are still parsed
    d.feed(b"FAIL ER06\r\njunk\r\n" + erx(9, "0102") + b"FAIL ER", t)
    assert d.state == ST_WAIT_REOPEN
    assert d.counters["unknown_lines"] == 1 and d.counters["udp_received"] == 1
    d.feed(b"06\r\n", t + 1)  # the split FAIL completes and is counted, nothing breaks
    assert d.counters["fail_refusal"] == 2
    assert d.poll(d.deadline()) == b"SKRESET\r\n"
