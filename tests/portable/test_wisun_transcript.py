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


# ---- transcripts in the shapes of published module exchanges ----------------------------
# Written here, in the shapes smdn/Smdn.Net.SkStackIP's tests feed its SKSTACK-IP client as
# BP35A1 output (tests/Smdn.Net.SkStackIP/Smdn.Net.SkStackIP/: SkStackClient.Commands.3.4.SKJOIN.cs,
# ...3.9.SKSCAN.cs, ...Events.4.1.ERXUDP.cs, ...Events.4.8.EVENT.cs; read 2026-12-03) and the
# BP35A1 command reference's chapters 3.4 SKJOIN, 3.9 SKSCAN, 4.1 ERXUDP, 4.8 EVENT: the
# BP35A1 prints ERXUDP data raw unless WOPT 01 was written, so these run in binary mode.
BIN_INIT = INIT_REPLIES[:4] + (b"OK 00\r\n",) + INIT_REPLIES[5:]
PEER = b"FE80:0000:0000:0000:021D:1290:1234:5679"


def binary_driver():
    d = WisunDriver(profile(), config(allow_wopt=False))
    run_init(d, replies=BIN_INIT)
    assert d.payload_mode == MODE_BINARY and d.state == ST_JOIN
    drain(d)
    return d


def feed_pieces(d, pieces, t):
    for p in pieces:  # the module's output arrives in pieces, as over a UART
        d.feed(p, t)
        t += 10
    return t


def test_skjoin_transcript_pana_then_event_25():
    d = binary_driver()
    t = feed_pieces(d, (
        b"OK\r\n",
        b"EVENT 21 " + C + b" 02\r\n",  # neighbour solicitation sent for the PANA start
        b"EVENT 02 " + C + b"\r\n",  # neighbour advertisement received
        b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0001 0\r\n",
        b"EVENT 21 ", C + b" 00", b"\r\n",
        b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0001 0\r\n",
        b"EVENT ", b"25 " + C + b"\r\n",
    ), 100)
    evs = drain(d)
    assert kinds(evs) == [EV_GATE, EV_JOINED] and [e for e in evs if e[0] == EV_ERROR] == []
    assert d.state == ST_READY and d.can_send()
    c = d.counters
    assert (c["udp_pana"], c["other_events"], c["garbled_lines"], c["unknown_lines"]) == (2, 3, 0, 0)


def test_skjoin_transcript_ending_in_event_24_is_a_rejected_join():
    d = binary_driver()
    feed_pieces(d, (
        b"OK\r\n", b"EVENT 21 " + C + b" 02\r\n", b"EVENT 02 " + C + b"\r\n",
        b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0001 0\r\n",
        b"EVENT 21 " + C + b" 00\r\n",
        b"ERXUDP " + C + b" " + M + b" 02CC 02CC " + LLA + b" 0 0001 0\r\n",
        b"EVENT 24 ", C + b"\r\n",
    ), 100)
    evs = drain(d)
    assert [e for e in evs if e[0] == EV_JOIN_FAILED] == [(EV_JOIN_FAILED, "rejected", 1)]
    assert d.state == ST_WAIT_REJOIN and not d.session_open


def test_an_active_scan_transcript_leaves_a_joined_driver_as_it_was():
    # SKSCAN 2 output (commissioning; the driver never scans): beacon, PAN descriptor, end
    d, t = binary_joined()
    t = feed_pieces(d, (
        b"EVENT 20 " + C + b"\r\n", b"EPAN", b"DESC\r\n", b"  Channel:21\r\n",
        b"  Channel Page:09\r\n", b"  Pan ID:8888\r\n", b"  Addr:12345678ABCDEF01\r\n",
        b"  LQI:E1\r\n", b"  PairID:AABBCCDD\r\n", b"EVENT 22 " + C + b"\r\n",
    ), t)
    assert d.state == ST_READY and d.can_send()
    assert d.counters["other_events"] == 2 and d.counters["unknown_lines"] == 7
    assert [e for e in drain(d) if e[0] != EV_ERROR] == []


def binary_joined():
    d = binary_driver()
    d.feed(b"OK\r\nEVENT 25 " + C + b"\r\n", 100)
    drain(d)
    return d, 110


def test_erxudp_transcripts_binary_data_in_pieces_and_with_cr_lf():
    d, t = binary_joined()
    t = feed_pieces(d, (
        b"ERXUDP " + PEER + b" " + C + b" 0E1A 0E1A 001D129012345679 0 0008 01234567\r\n",
        b"E", b"RXUDP", b" " + PEER + b" ", C + b" 0E1A 0E", b"1A 001D129012345679 0 0001 ",
        b"X", b"\r\n",
        # data that is itself CR LF, its own terminator coming later
        b"ERXUDP " + PEER + b" " + C + b" 0E1A 0E1A 001D129012345679 0 0002 \r\n", b"\r", b"\n",
        # a datagram for another service (ECHONET Lite on 0E1A is ours here; 1234 is not)
        b"ERXUDP " + PEER + b" " + C + b" 1234 1234 001D129012345679 0 0004 PANA\r\n",
    ), t)
    got = [e for e in drain(d) if e[0] == EV_UDP_RECEIVED]
    src = PEER.decode()
    assert got == [(EV_UDP_RECEIVED, b"01234567", (src, 0x0E1A)),
                   (EV_UDP_RECEIVED, b"X", (src, 0x0E1A)),
                   (EV_UDP_RECEIVED, b"\r\n", (src, 0x0E1A))]
    assert d.counters["udp_other_port"] == 1 and d.counters["garbled_lines"] == 0


def test_erxudp_transcript_in_hex_mode():
    d, t = joined()  # ROPT said 01: hex text
    d.feed(b"ERXUDP " + PEER + b" " + C + b" 0E1A 0E1A 001D129012345679 0 0008 0123456789ABCDEF\r\n", t)
    assert [e for e in drain(d) if e[0] == EV_UDP_RECEIVED] == [
        (EV_UDP_RECEIVED, b"\x01\x23\x45\x67\x89\xab\xcd\xef", (PEER.decode(), 0x0E1A))]


def test_session_event_transcripts_26_and_29_close_the_gate():
    d, t = binary_joined()
    d.feed(b"EVENT 29 " + C + b"\r\n", t)  # lifetime: the module re-authenticates itself
    assert d.state == ST_REAUTH and not d.can_send()
    d.feed(b"EVENT 25 " + C + b"\r\n", t + 1)
    assert d.state == ST_READY and d.can_send()
    d.feed(b"EVENT 26 " + C + b"\r\n", t + 2)  # the coordinator ends the session
    assert d.state == ST_WAIT_REJOIN and not d.session_open
    assert kinds(drain(d)) == [EV_GATE, EV_GATE, EV_GATE]


def test_send_result_transcript_event_21_and_event_33_outside_a_send():
    d, t = binary_joined()
    d.feed(b"EVENT 21 " + C + b" 00\r\nEVENT 33 " + C + b"\r\n", t)  # nothing to match
    assert drain(d) == [] and d.can_send()
    assert d.counters["other_events"] == 1
