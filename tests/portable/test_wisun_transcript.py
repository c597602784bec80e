"""Wi-SUN driver against a module transcript written from the command reference, not the driver.

The lines below follow the shapes ROHM's BP35A1 command reference gives (4.1 ERXUDP, 4.8 EVENT)
and what public B-route logs of SKJOIN show: PANA messages arrive as ERXUDP on port 02CC (716)
and the module's own PANA sends end with EVENT 21, all before EVENT 25.
"""
# Compiling edge/wisun.py from source needs ~150 KB of parser heap; a board runs it frozen.
# mp-heap: 160K
from wisun_script import *  # noqa: F401,F403

C = COORD.encode()
M = ME.encode()
LLA = b"001D129012345678"
PANA_1 = b"00000000C0000002000000010000000000000000"  # 20 bytes of a PANA header, hex
PANA_2 = b"0000001080000002000000010000000100000000"

JOIN_TRANSCRIPT = (
    b"OK\r\n"
    b"EVENT 21 " + C + b" 00\r\n"  # the module's PANA-Client-Initiation went out
    b"EVENT 02 " + C + b"\r\n"  # neighbour advertisement received
    b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0014 " + PANA_1 + b"\r\n"
    b"EVENT 21 " + C + b" 00\r\n"
    b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0014 " + PANA_2 + b"\r\n"
    b"EVENT 21 " + C + b" 00\r\n"
    b"EVENT 25 " + C + b"\r\n"
)


def test_pana_datagrams_during_join_are_counted_as_pana_not_handed_up():
    d = WisunDriver(profile(), config())
    run_init(d)
    d.feed(JOIN_TRANSCRIPT, 100)
    evs = drain(d)
    assert kinds(evs) == [EV_GATE, EV_JOINED]
    assert [e for e in evs if e[0] == EV_ERROR] == []
    c = d.counters
    assert c["udp_pana"] == 2 and c["udp_received"] == 0 and c["garbled_lines"] == 0
    assert c["other_events"] == 4  # three EVENT 21 outside a send, one EVENT 02


def test_pana_reauthentication_while_joined_reaches_nobody():
    d, t = joined()
    d.feed(ev(0x29), t)
    d.feed(b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0014 " + PANA_2 + b"\r\n", t + 1)
    d.feed(ev(0x25), t + 2)
    assert [e for e in drain(d) if e[0] in (EV_UDP_RECEIVED, EV_ERROR)] == []
    assert d.counters["udp_pana"] == 1 and d.can_send()


def test_only_the_collector_port_reaches_the_caller():
    d, t = joined()
    for rport, lport in ((b"0E1A", b"0E1A"), (b"1234", b"0E1A"), (b"0E1A", b"02CC")):
        d.feed(b"ERXUDP " + C + b" " + M + b" " + rport + b" " + lport + b" " + LLA
               + b" 1 0002 ABCD\r\n", t)
    evs = drain(d)
    assert [e for e in evs if e[0] == EV_UDP_RECEIVED] == [
        (EV_UDP_RECEIVED, b"\xab\xcd", (COORD, 0x0E1A))]
    c = d.counters
    assert c["udp_received"] == 1 and c["udp_other_port"] == 1 and c["udp_pana"] == 1
    # a collector on another port is configured, not assumed
    d2, t2 = joined(cfg=config(dest_port=0x1234))
    d2.feed(b"ERXUDP " + C + b" " + M + b" 1234 0E1A " + LLA + b" 1 0001 01\r\n", t2)
    d2.feed(b"ERXUDP " + C + b" " + M + b" 0E1A 0E1A " + LLA + b" 1 0001 02\r\n", t2)
    assert [e[1] for e in drain(d2) if e[0] == EV_UDP_RECEIVED] == [b"\x01"]
    assert d2.counters["udp_other_port"] == 1


def test_port_fields_out_of_range_are_garbled():
    d, t = joined()
    d.feed(b"ERXUDP " + C + b" " + M + b" 10E1A 0E1A " + LLA + b" 1 0001 01\r\n", t)
    d.feed(b"ERXUDP " + C + b" " + M + b" 0E1A ZZZZ " + LLA + b" 1 0001 01\r\n", t)
    assert d.counters["garbled_lines"] == 2 and d.counters["udp_received"] == 0


# EVENT shapes, BP35A1 reference 4.8: EVENT <NUM> <SENDER> [<PARAM>]; PARAM only on 21;
# C0 (wake-up signal after SKDSLEEP) has neither SENDER nor PARAM.
ADDR_ONLY = (0x01, 0x02, 0x05, 0x1F, 0x20, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x32, 0x33)


def test_event_c0_without_address_is_an_other_event():
    d, t = joined()
    d.feed(b"EVENT C0\r\n", t)
    assert drain(d) == []
    assert d.counters["other_events"] == 1 and d.counters["garbled_lines"] == 0
    assert d.can_send()


def test_every_documented_event_number_parses_with_its_own_field_count():
    # the unused ones: counted as other events, nothing else
    for num in (0x01, 0x02, 0x05, 0x1F, 0x20, 0x22):
        d, t = joined()
        d.feed(b"EVENT %02X " % num + C + b"\r\n", t)
        assert drain(d) == [] and d.counters["other_events"] == 1, num
    # and the wrong count for each documented number is garbled, not half-understood
    for num in ADDR_ONLY:
        d, t = joined()
        d.feed(b"EVENT %02X " % num + C + b" 00\r\n", t)  # a parameter it does not have
        d.feed(b"EVENT %02X\r\n" % num, t)  # no address
        assert d.counters["garbled_lines"] == 2, num
        assert d.can_send() and d.session_open and d.rate_open, num
    d, t = joined()
    d.feed(b"EVENT C0 " + C + b"\r\n", t)  # C0 has no address
    d.feed(b"EVENT 21 " + C + b" 00 00\r\n", t)
    d.feed(b"EVENT 21 " + C + b"\r\n", t)
    assert d.counters["garbled_lines"] == 3 and d.counters["other_events"] == 0


def test_dual_face_events_carry_a_side_after_the_address():
    prof = profile(sendto_side=1, event_side=True, erxudp_fields=[11, 10])
    d, t = joined(prof)
    d.feed(b"EVENT 02 " + C + b" 1\r\nEVENT C0\r\n", t)
    assert d.counters["other_events"] == 2 and d.counters["garbled_lines"] == 0
    d.feed(b"EVENT 29 " + C + b" 1\r\n", t + 1)
    assert d.state == ST_REAUTH
    d.feed(b"EVENT 25 " + C + b"\r\n", t + 2)  # side missing on a dual-face module
    assert d.counters["garbled_lines"] == 1 and d.state == ST_REAUTH


def test_undocumented_event_numbers_are_other_events_whatever_their_fields():
    d, t = joined()
    d.feed(b"EVENT 45 " + C + b"\r\nEVENT 46 " + C + b" 1 02\r\n", t)
    assert d.counters["other_events"] == 2 and d.counters["garbled_lines"] == 0
    d.feed(b"EVENT 100 " + C + b"\r\n", t)  # not one byte
    assert d.counters["garbled_lines"] == 1
