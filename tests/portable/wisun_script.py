"""Shared script pieces for the Wi-SUN driver tests: a small profile, config, module replies."""
from edge.wisun import (
    EV_ERROR, EV_GATE, EV_JOIN_FAILED, EV_JOINED, EV_REOPEN, EV_SEND_FAILED, EV_SEND_OK,
    EV_UDP_RECEIVED, FAIL_LINK, FAIL_REFUSAL, FAIL_REOPEN, GATE_RATE, GATE_SESSION, MODE_BINARY,
    MODE_HEX, ST_JOIN, ST_READY, ST_REAUTH, ST_SENDING, ST_WAIT_REJOIN, ST_WAIT_REOPEN,
    WisunConfigError, WisunDriver, WisunNotReady, WisunPayloadInvalid, WisunPayloadTooLarge,
    WisunProfileError, check_profile, classify_fail,
)

COORD = "FE80:0000:0000:0000:021D:1290:1234:5678"
ME = "FE80:0000:0000:0000:021D:1290:0000:0001"


def profile(**over):
    p = {
        "id": "t", "max_payload": 64, "payload_modes": ["hex", "binary"], "ropt": True,
        "erxudp_fields": [9], "event_side": False, "sendto_side": None,
        "timing_ms": {"cmd": 100, "reset": 300, "wopt": 200, "join": 1000, "send": 500,
                      "reauth": 800, "rate_gate_max": 5000, "line_gap": 200},
    }
    for k in over:
        p[k] = over[k]
    return p


def config(**over):
    c = {"rbid": "0123456789ABCDEF0123456789ABCDEF", "pwd": "SECRETPWD123", "channel": 0x21,
         "pan_id": 0x8888, "coordinator": COORD, "dest_port": 0x0E1A,
         "backoff_base_ms": 1000, "backoff_max_ms": 8000, "max_join_failures": 3}
    for k in over:
        c[k] = over[k]
    return c


def drain(d):
    out = []
    while True:
        e = d.next_event()
        if e is None:
            return out
        out.append(e)


def kinds(events, skip_errors=True):
    return [e[0] for e in events if not (skip_errors and e[0] == EV_ERROR)]


def ev(num, param=None, side=None):
    s = "EVENT %02X %s" % (num, COORD)
    if side is not None:
        s += " %d" % side
    if param is not None:
        s += " %02X" % param
    return (s + "\r\n").encode()


INIT_REPLIES = (
    b"OK\r\n", b"OK\r\n", b"EVER 1.2.10\r\nOK\r\n", b"EAPPVER rev26e\r\nOK\r\n", b"OK 01\r\n",
    b"OK\r\n", b"OK\r\n", b"OK\r\n", b"OK\r\n",
)
INIT_COMMANDS = [
    b"SKRESET\r\n", b"SKSREG SFE 0\r\n", b"SKVER\r\n", b"SKAPPVER\r\n", b"ROPT\r\n",
    b"SKSETPWD C SECRETPWD123\r\n", b"SKSETRBID 0123456789ABCDEF0123456789ABCDEF\r\n",
    b"SKSREG S2 21\r\n", b"SKSREG S3 8888\r\n", b"SKJOIN " + COORD.encode() + b"\r\n",
]


def run_init(d, t=0, replies=INIT_REPLIES):
    """Feed replies one by one; returns (commands written, now)."""
    written = [d.poll(t)]
    for r in replies:
        t += 5
        d.feed(r, t)
        written.append(d.poll(t))
    return written, t


def joined(prof=None, cfg=None, rand=None):
    prof = prof or profile()
    d = WisunDriver(prof, cfg or config(), rand)
    _, t = run_init(d)
    t += 5
    d.feed(b"OK\r\n" + ev(0x25, side=1 if prof.get("event_side") else None), t)
    assert d.state == ST_READY and d.can_send()
    drain(d)
    return d, t


def send_ok(d, t, payload=b"x", tag=1):
    d.send(payload, tag, t)
    d.feed(b"OK\r\n" + ev(0x21, 0), t + 1)
    return drain(d)



def erx(fields, data_hex, dlen=None):
    if dlen is None:
        dlen = len(data_hex) // 2
    head = ["ERXUDP", COORD, ME, "0E1A", "0E1A", "001D129012345678"]
    if fields == 11:
        head.append("C8")
    head.append("1")
    if fields >= 10:
        head.append("1")
    head.append("%04X" % dlen)
    return (" ".join(head) + " " + data_hex + "\r\n").encode()


def gates_after(*events):
    d, t = joined()
    for num in events:
        d.feed(ev(num), t)
    return d


