"""An in-memory rig for the agent core: a Modbus TCP device, a SKSTACK-IP module and a
collector, all byte-level, so tests/portable/test_agent*.py drive edge.agent.Agent with
nothing but bytes and integers (and run unchanged inside MicroPython).
"""
import binascii
import json

from edge.config import validate
from edge.frame import ST_TIME_REQUEST, decode_frame, encode_ack

COORD = "FE80:0000:0000:0000:021D:1290:1234:5678"
ME = "FE80:0000:0000:0000:021D:1290:0000:0001"
KEY_HEX = "000102030405060708090a0b0c0d0e0f"

INVERTER_MAP = {
    "name": "rig_inverter", "function": 3, "start": 40070, "count": 27, "word_order": "big",
    "checks": [{"addr": 40070, "value": 103}],
    "quantities": {
        "power": {"addr": 40084, "type": "int16", "sf_addr": 40085, "sign": -1},
        "export": {"addr": 40094, "type": "acc32", "sf_addr": 40096},
    },
}

PROFILE = {
    "id": "rig", "max_payload": 120, "payload_modes": ["hex", "binary"], "ropt": True,
    "erxudp_fields": [9], "event_side": False, "sendto_side": None,
    "timing_ms": {"cmd": 100, "reset": 300, "wopt": 200, "join": 1000, "send": 500,
                  "reauth": 800, "rate_gate_max": 5000, "line_gap": 200},
}


def config(**over):
    c = {
        "device_id": 4660, "key": KEY_HEX, "key_no": 0, "data_dir": "/data",
        "device": {"map": "inline", "transport": "tcp", "host": "127.0.0.1", "port": 502,
                   "unit": 1, "poll_interval_s": 10, "timeout_ms": 200},
        "wisun": {"module": "rig", "serial": "/dev/null", "rbid": "0123456789ABCDEF0123456789ABCDEF",
                  "pwd": "SECRETPWD123", "channel": 33, "pan_id": 0x8888, "coordinator": COORD,
                  "backoff_base_ms": 50, "backoff_max_ms": 400},
        "uplink": {"max_batch": 8, "ack_timeout_ms": 300, "retry_ms": 50},
        # the rig's clock is the truth (tests/portable/test_agent_clock.py drifts it)
        "clock": {"source": "external"},
    }
    for k in over:
        c[k] = over[k]
    return validate(c)


class Inverter:
    """Constant export power; lifetime Wh counter exact to the second (floor)."""

    def __init__(self, watts, wh0=100000):
        self.watts = watts
        self.wh0 = wh0
        self.fail = None  # None, "timeout", "exception", "crc"

    def wh_at(self, t):
        return self.wh0 + self.watts * t // 3600

    def reply(self, req, t):
        """MBAP reply bytes to a 12-byte read request at edge second t (b'' = no reply)."""
        if self.fail == "timeout":
            return b""
        tid = bytes(req[0:2])
        if self.fail == "exception":
            return tid + bytes([0, 0, 0, 3, req[6], 0x83, 4])
        words = [0] * 27
        words[0] = 103
        words[1] = 50
        words[14] = self.watts
        words[15] = 0
        wh = self.wh_at(t) & 0xFFFFFFFF
        words[24] = wh >> 16
        words[25] = wh & 0xFFFF
        words[26] = 0
        body = bytearray([req[6], 3, 54])
        for w in words:
            body.append(w >> 8)
            body.append(w & 0xFF)
        n = len(body)
        out = tid + bytes([0, 0, n >> 8, n & 0xFF]) + bytes(body)
        if self.fail == "garbled":
            return out[:5] + b"\xff\xff" + out[7:]
        return out


class Module:
    """SKSTACK-IP module answering the driver's commands; forwards payloads to `collector`."""

    def __init__(self, collector):
        self.collector = collector
        self.buf = b""
        self.out = []
        self.up = True  # False: link down, sends fail with EVENT 21 param 01
        self.drop_acks = False
        self.sent = 0

    def write(self, data):
        self.buf += bytes(data)
        while True:
            if self.buf.startswith(b"SKSENDTO "):
                parts = self.buf.split(b" ", 6)
                if len(parts) < 7:
                    return
                n = int(parts[5], 16)
                if len(parts[6]) < n:
                    return
                payload = parts[6][:n]
                self.buf = parts[6][n:]
                self._send(payload)
                continue
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            line = self.buf[:i]
            self.buf = self.buf[i + 2:]
            self._command(line)

    def _command(self, line):
        cmd = line.split(b" ")[0]
        if cmd == b"SKVER":
            self.out.append(b"EVER 1.2.10\r\nOK\r\n")
        elif cmd == b"SKAPPVER":
            self.out.append(b"EAPPVER rig\r\nOK\r\n")
        elif cmd == b"ROPT":
            self.out.append(b"OK 01\r\n")
        elif cmd == b"SKJOIN":
            # PANA runs over UDP 716 (02CC): a real module prints its messages as ERXUDP
            self.out.append(b"OK\r\nEVENT 21 " + COORD.encode() + b" 00\r\n"
                            + self.erxudp(b"\x00" * 16, port="02CC")
                            + b"EVENT 25 " + COORD.encode() + b"\r\n")
        else:
            self.out.append(b"OK\r\n")

    def _send(self, payload):
        self.sent += 1
        if not self.up:
            self.out.append(b"EVENT 21 " + COORD.encode() + b" 01\r\nOK\r\n")
            return
        self.out.append(b"EVENT 21 " + COORD.encode() + b" 00\r\nOK\r\n")
        reply = self.collector.receive(payload)
        if reply is not None and not self.drop_acks:
            self.out.append(self.erxudp(reply))

    def erxudp(self, payload, port="0E1A"):
        return ("ERXUDP %s %s %s %s 021D129012345678 1 %04X "
                % (COORD, ME, port, port, len(payload))).encode() \
            + binascii.hexlify(payload).upper() + b"\r\n"

    def read(self):
        out = b"".join(self.out)
        self.out = []
        return out


class Collector:
    """Verifies frames like the head-end, stores (device, slot) once, acks by seq."""

    def __init__(self, key):
        self.key = key
        self.now_ms = None  # true edge ms: acks of frames with ST_TIME_REQUEST carry it
        self.slots = {}
        self.dups = 0
        self.conflicts = 0
        self.seqs = []
        self.seals = []  # seal bytes of every accepted seal frame, in arrival order
        self.rejected = 0

    def _lookup(self, dev, kid):
        return self.key

    def receive(self, payload):
        try:
            f = decode_frame(bytes(payload), self._lookup)
        except Exception:
            self.rejected += 1
            return None
        assert f.seq not in self.seqs, "seq reused"
        self.seqs.append(f.seq)
        if f.seal is not None:
            self.seals.append(f.seal)
        for r in f.records:
            old = self.slots.get(r[0])
            if old is not None:
                self.dups += 1
                if old != tuple(r[1:]):
                    self.conflicts += 1
                continue
            self.slots[r[0]] = tuple(r[1:])
        tm = None
        if f.status & ST_TIME_REQUEST and self.now_ms is not None:
            tm = (self.now_ms // 1000, self.now_ms % 1000)
        return encode_ack(self.key, f.device_id, f.kid, seqs=[f.seq], time=tm)


class Rig:
    """Runs an agent against Inverter + Module + Collector on a simulated clock (t, ms)."""

    def __init__(self, agent_factory, inverter, t0):
        self.make = agent_factory
        self.inv = inverter
        self.col = Collector(binascii.unhexlify(KEY_HEX))
        self.mod = Module(self.col)
        self.t = t0
        self.now = 0  # ticks, ms
        self.agent = agent_factory(t0)

    def restart(self):
        self.agent = self.make(self.t)

    def step(self, dt_ms=1000):
        a = self.agent
        t = self.t
        if a.poll_due(t):
            req = bytes(a.start_poll(t, 0, self.now))
            rep = self.inv.reply(req, t)
            if rep:
                a.modbus_feed(rep, len(rep), self.now, t)
        if a.modbus_busy():
            a.modbus_check(self.now + 10000, t)
        for _ in range(32):
            out = a.service(self.now, t)
            wrote = False
            while out:  # piece by piece, as the board writes them
                self.mod.write(out)
                wrote = True
                out = a.next_output()
            data = self.mod.read()
            if data:
                a.wisun_feed(data, self.now, t)
            elif not wrote:
                break
        self.now = (self.now + dt_ms) & 0x3FFFFFFF
        self.t += dt_ms // 1000

    def run(self, seconds, dt_ms=1000, stop=None):
        """Step for `seconds` of simulated time, or until stop() is true (e.g. power is cut)."""
        for _ in range(seconds * 1000 // dt_ms):
            self.step(dt_ms)
            if stop is not None and stop():
                return


def map_json():
    return json.loads(json.dumps(INVERTER_MAP))
