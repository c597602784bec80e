"""`smeter read`: read a device through the edge Modbus client and print JSON, once or
polling in a loop like mbpoll/modpoll, a named register map or a raw typed range.

The same sans-I/O edge code as the board does the framing, parsing and register-map
decoding, and the same byte ports (firmware/lib/ports.py: a serial device by path, a TCP
socket) carry the bytes, as the agent's runner uses them.
"""
import argparse
import importlib.util
import json
import os
import sys
from decimal import Decimal

from edge.errors import EdgeError
from edge.modbus_rtu import RtuClient, gap_ms_for_baud
from edge.modbus_tcp import TcpClient
from edge.reading import (
    HAS_EXPORT,
    HAS_IMPORT,
    HAS_POWER,
    R_EXP_EXP,
    R_EXP_HI,
    R_EXP_LO,
    R_IMP_EXP,
    R_IMP_HI,
    R_IMP_LO,
    R_POWER,
    R_POWER_EXP,
    new_reading,
)
from edge.regmap import compile_map, decode
from host_tools import ROOT, cli_args, cli_log, raw_values
from host_tools.exit_codes import ENVIRONMENT, FAILED, OK, USAGE

MAPS_DIR = os.path.join(ROOT, "hw", "maps")
EXIT_DEVICE = FAILED  # the device did not answer usably (timeout, exception, bad frame)
EXIT_USAGE = USAGE  # bad arguments or unknown map
EXIT_IO = ENVIRONMENT  # the port or host could not be opened (missing device, refused)


class UsageError(Exception):
    pass


def known_maps():
    return sorted(f[:-5] for f in os.listdir(MAPS_DIR) if f.endswith(".json"))


def load_map(name):
    """A map name under hw/maps/ or a path to a JSON file -> (parsed JSON, RegMap)."""
    path = name if name.endswith(".json") else os.path.join(MAPS_DIR, name + ".json")
    if not os.path.isfile(path):
        raise UsageError("unknown map %r (known: %s)" % (name, ", ".join(known_maps())))
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    return obj, compile_map(obj)


def exact_number(mantissa, exp):
    """mantissa * 10**exp for JSON without rounding: an int when integral, otherwise a JSON
    number whose text is the exact decimal (shortest float repr round-trips it, true up to
    15 significant digits), otherwise the decimal as a string."""
    d = Decimal(mantissa).scaleb(exp)
    if d == d.to_integral_value():
        return int(d)
    f = float(d)
    if Decimal(repr(f)) == d:
        return f
    return str(d)


def reading_to_json(r, present):
    out = {}
    if present & HAS_POWER:
        out["power_w"] = exact_number(r[R_POWER], r[R_POWER_EXP])
    if present & HAS_IMPORT:
        out["import_wh"] = exact_number((r[R_IMP_HI] << 16) | r[R_IMP_LO], r[R_IMP_EXP])
    if present & HAS_EXPORT:
        out["export_wh"] = exact_number((r[R_EXP_HI] << 16) | r[R_EXP_LO], r[R_EXP_EXP])
    return out


def _ports():
    """firmware/lib/ports.py, the agent's byte ports, loaded here unchanged."""
    mod = sys.modules.get("ports")
    if mod is None:
        path = os.path.join(ROOT, "firmware", "lib", "ports.py")
        spec = importlib.util.spec_from_file_location("ports", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["ports"] = mod
    return mod


class Link:
    """A byte port and the edge Modbus client for it: one blocking read per call."""

    def __init__(self, port, client, req):
        self.port = port
        self.client = client
        self.req = req
        port.ensure()  # OSError now (no such port, refused): exit 4, not a device failure

    def read(self, unit, function, address, count, words, woff=0):
        _ports().transact(self.port, self.client, self.req, unit, function, address, count,
                          words, woff)

    def close(self):
        self.port.close()


def open_link(args, timeout_ms):
    ports = _ports()
    if args.tcp:
        host, port = args.tcp
        return Link(ports.TcpPort(host, port, timeout_ms), TcpClient(timeout_ms), bytearray(12))
    return Link(ports.SerialPort(args.serial, args.baud),
                RtuClient(gap_ms_for_baud(args.baud), timeout_ms), bytearray(8))


class Request:
    """What one poll reads: a named map (decoded by the edge's regmap) or a raw range."""

    def __init__(self, args):
        if not 0 <= args.unit <= 255:
            raise UsageError("--unit must be 0..255")
        if not args.timeout > 0:
            raise UsageError("--timeout must be positive")
        self.raw = args.raw
        if args.raw is not None:
            address, n = args.raw
            self.function = args.function
            self.start = address
            self.width = raw_values.WIDTH[args.type]
            self.count = n * self.width
            if self.count > raw_values.MAX_REGISTERS or address + self.count > 0x10000:
                raise UsageError("--raw %d:%d of %s is %d registers: at most %d per read, "
                                 "within 0..65535" % (address, n, args.type, self.count,
                                                      raw_values.MAX_REGISTERS))
            self.type, self.word_order = args.type, args.word_order
        else:
            if args.map is None:
                raise UsageError("give --map NAME or --raw ADDRESS[:COUNT]")
            self.obj, self.rmap = load_map(args.map)
            self.function, self.start, self.count = (self.rmap.function, self.rmap.start,
                                                     self.rmap.count)

    def decode(self, unit, words):
        if self.raw is not None:
            out = {"unit": unit, "function": self.function, "address": self.start,
                   "type": self.type, "word_order": self.word_order,
                   "values": raw_values.decode(words, self.type, self.word_order)}
        else:
            reading = new_reading()
            present = decode(self.rmap, words, 0, reading)
            out = {"map": self.rmap.name, "unit": unit}
            out.update(reading_to_json(reading, present))
        out["registers"] = {str(self.start + i): w for i, w in enumerate(words)}
        return out


def _timeout_ms(args):
    return max(1, int(args.timeout * 1000))


def _error_line(e, args):
    where = "%s:%d" % args.tcp if args.tcp else args.serial
    if isinstance(e, EdgeError):
        return "%s: %s (unit %d at %s)" % (e.kind, e, args.unit, where)
    return "io: %s (%s)" % (e, where)


def run(args):
    try:
        req = Request(args)
    except UsageError as e:
        print("smeter read: error: %s" % e, file=sys.stderr)
        return USAGE
    if args.count == 1:
        try:
            out = _poll(args, req, [None])
        except (EdgeError, OSError, ValueError) as e:
            print("smeter read: error: %s" % _error_line(e, args), file=sys.stderr)
            return EXIT_DEVICE if isinstance(e, EdgeError) else ENVIRONMENT
        print(json.dumps(out, indent=2))
        return OK
    return _poll_loop(args, req)


def _poll(args, req, holder):
    """One poll with up to --retries retries; holder[0] is the open link (reopened after a
    failure: a late reply or a half-read frame must not meet the next request)."""
    for attempt in range(args.retries + 1):
        try:
            if holder[0] is None:
                holder[0] = open_link(args, _timeout_ms(args))
            words = [0] * req.count
            holder[0].read(args.unit, req.function, req.start, req.count, words, 0)
            return req.decode(args.unit, words)
        except (EdgeError, OSError, ValueError) as e:
            if holder[0] is not None:
                holder[0].close()
                holder[0] = None
            if attempt == args.retries:
                raise
            cli_log.info("smeter read: retry %d/%d after %s" % (attempt + 1, args.retries,
                                                               _error_line(e, args)))


def _poll_loop(args, req):
    """mbpoll-style polling: one JSON line per poll on stdout, failures on stderr, a summary
    on stderr at the end (or on Ctrl-C)."""
    import time

    holder = [None]
    ok = failed = 0
    i = 0
    next_t = time.monotonic()
    try:
        while args.count == 0 or i < args.count:
            if i:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            next_t = max(next_t + args.interval, time.monotonic())
            i += 1
            t = time.time()
            try:
                out = _poll(args, req, holder)
            except (EdgeError, OSError, ValueError) as e:
                failed += 1
                print("smeter read: poll %d: error: %s" % (i, _error_line(e, args)),
                      file=sys.stderr, flush=True)
                continue
            ok += 1
            line = {"poll": i, "time": _iso(t)}
            line.update(out)
            print(json.dumps(line), flush=True)
    except KeyboardInterrupt:
        _summary(i, ok, failed, interrupted=True)
        raise
    finally:
        if holder[0] is not None:
            holder[0].close()
    _summary(i, ok, failed)
    return OK if failed == 0 else EXIT_DEVICE


def _summary(polls, ok, failed, interrupted=False):
    cli_log.info("smeter read: %d poll(s), %d ok, %d failed%s"
                 % (polls, ok, failed, " (interrupted)" if interrupted else ""))


def _iso(t):
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).astimezone().isoformat(
        timespec="milliseconds")


def _raw_range(text):
    addr, _, n = text.partition(":")
    try:
        a, c = int(addr, 0), int(n or "1", 0)
    except ValueError:
        raise argparse.ArgumentTypeError("expected ADDRESS[:COUNT], e.g. 40000:10 or 0x34:2, "
                                         "got %r" % text) from None
    if not (0 <= a <= 0xFFFF and 1 <= c <= raw_values.MAX_REGISTERS):
        raise argparse.ArgumentTypeError("ADDRESS must be 0..65535 and COUNT 1..%d, got %r"
                                         % (raw_values.MAX_REGISTERS, text))
    return a, c


def register(subparsers):
    p = subparsers.add_parser(
        "read",
        help="read a Modbus device (once, or polling like mbpoll) and print JSON",
        description="Read one Modbus device (Modbus TCP or RTU) through the edge client. With "
        "--map NAME it decodes a register map and prints power_w (import positive, export "
        "negative), import_wh, export_wh (quantities the device lacks are omitted); with "
        "--raw ADDRESS[:COUNT] it reads any register range and prints the values as --type "
        "(u16, s16, u32, s32, u64, f32) in --word-order. Both also print the raw registers by "
        "address. One read prints one JSON object; --count N (0: until Ctrl-C) polls every "
        "--interval seconds and prints one JSON line per poll, failed polls on stderr. "
        "Exit 0 when every poll answered; 1 on timeout, exception reply or bad frame; "
        "2 on bad arguments or an unknown map; 4 when the port or host cannot be opened. "
        "See docs/commands/read.md.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", type=cli_args.hostport,
                       help="Modbus TCP device or gateway")
    where.add_argument("--serial", metavar="DEV", help="serial port for Modbus RTU (8N1), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=cli_args.int_range(300, 4000000), default=9600,
                   help="RTU baud rate, 300..4000000 (default 9600)")
    p.add_argument("--unit", type=int, required=True, help="Modbus unit id (slave id) 0..255")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--map",
        metavar="NAME",
        help="register map under hw/maps/ (%s) or a path to a map JSON file" % ", ".join(known_maps()),
    )
    what.add_argument("--raw", metavar="ADDRESS[:COUNT]", type=_raw_range,
                      help="read COUNT values (default 1) of --type from protocol address "
                      "ADDRESS (decimal or 0x hex, 0-based as on the wire)")
    p.add_argument("--type", choices=sorted(raw_values.WIDTH), default="u16",
                   help="--raw: value type (default u16); 32/64-bit types span 2/4 registers")
    p.add_argument("--word-order", choices=("big", "little"), default="big",
                   help="--raw: 'big' = most significant register first (Modbus convention, "
                   "default), 'little' = least significant first (word-swapped devices)")
    p.add_argument("--function", type=int, choices=(3, 4), default=3,
                   help="--raw: 3 = holding registers (default), 4 = input registers")
    p.add_argument("--timeout", type=cli_args.positive_float, default=1.0, metavar="S",
                   help="reply deadline in seconds (default 1)")
    p.add_argument("--count", type=cli_args.nonnegative_int, default=1, metavar="N",
                   help="polls to make (default 1; 0 = until Ctrl-C); more than one prints "
                   "JSON lines")
    p.add_argument("--interval", type=cli_args.positive_float, default=1.0, metavar="S",
                   help="seconds from one poll's start to the next (default 1)")
    p.add_argument("--retries", type=cli_args.int_range(0, 100), default=0, metavar="N",
                   help="retry a failed read up to N times before the poll counts as failed "
                   "(the link is reopened; default 0)")
    p.set_defaults(func=run)
