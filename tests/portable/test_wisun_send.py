"""Wi-SUN driver: SKSENDTO bytes, EVENT 21 results, FAIL classes, payload limit, ERXUDP."""
# Compiling edge/wisun.py from source needs ~150 KB of parser heap; a board runs it frozen,
# and test_driver_footprint_on_micropython bounds what the driver itself holds.
# mp-heap: 160K
from runtime import micropython_only
from wisun_script import *  # noqa: F401,F403


# ------------------------------------------------------------------ send
def test_send_builds_the_exact_sksendto_and_reports_ok_in_either_order():
    d, t = joined()
    cmd = d.send(b"\x00\r\n\xff", "slot-7", t)
    assert cmd == ("SKSENDTO 1 %s 0E1A 1 0004 " % COORD).encode() + b"\x00\r\n\xff"
    assert d.state == ST_SENDING and not d.can_send()
    d.feed(b"OK\r\n", t + 1)
    assert drain(d) == []
    d.feed(ev(0x21, 0), t + 2)
    assert drain(d) == [(EV_SEND_OK, "slot-7", None)]
    # EVENT 21 before OK (RL7023 / some firmware order)
    d.send(b"a", 2, t + 3)
    d.feed(ev(0x21, 0), t + 4)
    assert drain(d) == []
    d.feed(b"OK\r\n", t + 5)
    assert drain(d) == [(EV_SEND_OK, 2, None)] and d.can_send()


def test_dual_face_module_sends_on_the_han_side_and_parses_side_in_events():
    d, t = joined(profile(sendto_side=1, event_side=True, erxudp_fields=[11, 10]))
    cmd = d.send(b"ab", 9, t)
    assert cmd == ("SKSENDTO 1 %s 0E1A 1 1 0002 " % COORD).encode() + b"ab"
    d.feed(b"OK\r\n" + ev(0x21, 0, side=1), t + 1)
    assert drain(d) == [(EV_SEND_OK, 9, None)]


def test_payload_limit_is_exposed_and_larger_payloads_are_refused_whole():
    d, t = joined()
    assert d.max_payload == 64
    cmd = d.send(b"p" * 64, 1, t)
    assert cmd.endswith(b" 0040 " + b"p" * 64)
    d.feed(b"OK\r\n" + ev(0x21, 0), t + 1)
    drain(d)
    try:
        d.send(b"p" * 65, 2, t + 2)
    except WisunPayloadTooLarge as e:
        assert e.kind == "wisun_payload_too_large" and e.detail == (65, 64)
    else:
        assert False
    assert d.can_send()  # nothing was queued or truncated
    for bad in (b"", "text", None, 5):
        try:
            d.send(bad, 3, t + 3)
        except WisunPayloadInvalid as e:
            assert e.kind == "wisun_payload_invalid"
        else:
            assert False


def test_send_before_join_is_refused_with_a_typed_error():
    d = WisunDriver(profile(), config())
    try:
        d.send(b"x", 1, 0)
    except WisunNotReady as e:
        assert e.kind == "wisun_not_ready" and e.detail == "idle"
    else:
        assert False


def test_send_failures_carry_their_reason():
    cases = (
        (ev(0x21, 1), "tx_failed"),
        (ev(0x21, 2), "address_resolution"),
        (b"FAIL ER10\r\n", "link"),
        (b"FAIL ER09\r\n", "link"),
        (b"FAIL ER05\r\n", "refused"),
    )
    for reply, reason in cases:
        d, t = joined()
        d.send(b"x", "tag", t)
        d.feed(b"OK\r\n" + reply if reply.startswith(b"EVENT") else reply, t + 1)
        evs = drain(d)
        assert (EV_SEND_FAILED, "tag", reason) in evs, (reply, evs)
        assert d.state == ST_READY and d.can_send()


def test_send_timeout_then_repeated_link_failures_reopen_the_module():
    d, t = joined(cfg=config(max_link_failures=3))
    for i in range(2):
        d.send(b"x", i, t)
        t += 500
        d.poll(t)
        assert (EV_SEND_FAILED, i, "timeout") in drain(d)
        assert d.state == ST_READY
    d.send(b"x", 2, t)
    d.feed(b"FAIL ER10\r\n", t + 1)
    evs = drain(d)
    assert (EV_SEND_FAILED, 2, "link") in evs and (EV_REOPEN, "link_failures", None) in evs
    assert d.state == ST_WAIT_REOPEN and not d.can_send()


def test_success_resets_the_link_failure_count():
    d, t = joined(cfg=config(max_link_failures=2))
    for i in range(5):
        d.send(b"x", i, t)
        d.feed(b"FAIL ER10\r\n", t + 1)
        send_ok(d, t + 2)
        assert d.state == ST_READY


def test_fail_classes():
    assert [classify_fail(c) for c in (4, 5, 6)] == [FAIL_REFUSAL] * 3
    assert [classify_fail(c) for c in (9, 10)] == [FAIL_LINK] * 2
    assert [classify_fail(c) for c in (1, 2, 3, 7, 8, 11, 99)] == [FAIL_REOPEN] * 7


def test_unknown_fail_code_while_sending_reopens():
    d, t = joined()
    d.send(b"x", 1, t)
    d.feed(b"FAIL ER07\r\n", t + 1)
    evs = drain(d)
    assert (EV_SEND_FAILED, 1, "link") in evs and (EV_REOPEN, "unknown_fail", None) in evs
    assert d.counters["fail_reopen"] == 1


# ------------------------------------------------------------------ receive
def test_erxudp_with_9_10_or_11_fields_is_parsed_and_mismatches_counted():
    d, t = joined(profile(erxudp_fields=[11, 10]))
    for n in (11, 10, 9):
        d.feed(erx(n, "A1B2C3"), t)
    evs = [e for e in drain(d) if e[0] == EV_UDP_RECEIVED]
    assert evs == [(EV_UDP_RECEIVED, b"\xa1\xb2\xc3", (COORD, 0x0E1A))] * 3
    assert d.counters["erxudp_field_mismatch"] == 1


def test_garbled_erxudp_is_counted_and_skipped():
    d, t = joined()
    bad = (
        erx(9, "A1B2C"),  # odd hex length
        erx(9, "A1B2", dlen=3),  # length disagrees
        erx(9, "ZZZZ"),  # not hex
        b"ERXUDP " + COORD.encode() + b" 0E1A\r\n",  # truncated
        erx(9, "A1B2").replace(b"0E1A 0E1A", b"XXXX 0E1A"),  # source port not hex
    )
    for line in bad:
        d.feed(line, t)
    assert [e for e in drain(d) if e[0] == EV_UDP_RECEIVED] == []
    assert d.counters["garbled_lines"] == 5 and d.counters["unknown_lines"] == 0
    assert d.counters["udp_received"] == 0
    d.feed(erx(9, "A1B2"), t)  # and the next good line still works
    assert (EV_UDP_RECEIVED, b"\xa1\xb2", (COORD, 0x0E1A)) in drain(d)


def test_binary_mode_erxudp_may_carry_cr_lf_in_its_data():
    d = WisunDriver(profile(), config(allow_wopt=False))
    run_init(d, replies=INIT_REPLIES[:4] + (b"OK 00\r\n",) + INIT_REPLIES[5:])
    d.feed(b"OK\r\n" + ev(0x25), 100)
    drain(d)
    data = b"\r\nOK\r\n\x00 "
    line = ("ERXUDP %s %s 0E1A 0E1A 001D129012345678 1 %04X " % (COORD, ME, len(data))).encode()
    stream = line + data + b"\r\n" + ev(0x21, 0)
    for i in range(len(stream)):  # byte by byte
        d.feed(stream[i:i + 1], 101)
    evs = drain(d)
    assert (EV_UDP_RECEIVED, data, (COORD, 0x0E1A)) in evs
    assert d.counters["stray_ok"] == 0 and d.counters["garbled_lines"] == 0


def test_driver_footprint_on_micropython():
    micropython_only("the driver's RAM is measured only on MicroPython (gc.mem_free)")
    import gc
    gc.collect()
    before = gc.mem_free()
    d = WisunDriver(profile(max_payload=1232), config())
    gc.collect()
    held = before - gc.mem_free()
    assert held < 6144, held  # mostly the line buffer: 2 * 1232 + 384 bytes
    run_init(d)
    d.feed(b"OK\r\n" + ev(0x25), 100)
    drain(d)
    send_ok(d, 100, b"p" * 1232, 0)
    gc.collect()
    steady = gc.mem_free()
    for i in range(20):
        send_ok(d, 100, b"p" * 1232, i)
    gc.collect()
    assert steady - gc.mem_free() < 256, steady - gc.mem_free()  # sends leave nothing behind


def test_sendto_head_and_commit_are_send_without_the_copy():
    far = "FE80:0000:0000:0000:021D:1290:1234:567A"  # 39 characters, the longest address

    def ready():
        return joined(profile(sendto_side=1, event_side=True, erxudp_fields=[11, 10]),
                      config(coordinator=far))

    d, t = ready()
    payload = b"\x00\r\n\xff" * (d.max_payload // 4)
    head = d.sendto_head(len(payload))
    assert d.can_send()  # nothing changes before the commit
    assert len(head) == 65  # the longest head: that address, port, sec, side, length
    d.send_commit("f", t)
    assert d.state == ST_SENDING and not d.can_send()
    d2, t2 = ready()
    assert d2.send(payload, "f", t2) == head + payload
    d.feed(b"OK\r\n" + ev(0x21, 0, side=1), t + 1)
    assert drain(d) == [(EV_SEND_OK, "f", None)]
