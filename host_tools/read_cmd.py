"""`smeter read`: read one device once through the edge Modbus client and print JSON.

The same sans-I/O edge code as the board does the framing, parsing and register-map
decoding; only the link (pyserial, or the socket adapter from firmware/lib) is host code.
"""
import importlib.util
import json
import os
import sys
from decimal import Decimal

from edge.errors import EdgeError
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAPS_DIR = os.path.join(ROOT, "hw", "maps")
EXIT_DEVICE = 1  # the device did not answer usably (timeout, exception, bad frame, I/O)
EXIT_USAGE = 2  # bad arguments or unknown map


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


def _load_socket_adapter():
    """firmware/lib/modbus_socket.py: the board's own TCP adapter, run here unchanged."""
    path = os.path.join(ROOT, "firmware", "lib", "modbus_socket.py")
    spec = importlib.util.spec_from_file_location("modbus_socket", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def open_link(args, timeout_ms):
    if args.tcp:
        host, sep, port = args.tcp.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise UsageError("--tcp wants HOST:PORT, got %r" % args.tcp)
        return _load_socket_adapter().TcpLink(host, int(port), timeout_ms)
    from host_tools.serial_link import SerialLink

    return SerialLink(args.serial, args.baud, timeout_ms)


def read_once(args):
    if not 0 <= args.unit <= 255:
        raise UsageError("--unit must be 0..255")
    if not args.timeout > 0:
        raise UsageError("--timeout must be positive")
    obj, rmap = load_map(args.map)
    timeout_ms = max(1, int(args.timeout * 1000))
    link = open_link(args, timeout_ms)
    try:
        words = [0] * rmap.count
        link.read(args.unit, rmap.function, rmap.start, rmap.count, words, 0)
    finally:
        link.close()
    reading = new_reading()
    present = decode(rmap, words, 0, reading)
    out = {"map": rmap.name, "unit": args.unit}
    out.update(reading_to_json(reading, present))
    out["registers"] = {str(rmap.start + i): w for i, w in enumerate(words)}
    return out


def run(args):
    where = args.tcp or args.serial
    try:
        out = read_once(args)
    except UsageError as e:
        print("smeter read: error: %s" % e, file=sys.stderr)
        return EXIT_USAGE
    except EdgeError as e:
        print("smeter read: error: %s: %s (unit %d at %s)" % (e.kind, e, args.unit, where), file=sys.stderr)
        return EXIT_DEVICE
    except (OSError, ValueError) as e:  # connect/serial failures; pyserial raises SerialException(OSError)
        print("smeter read: error: io: %s (%s)" % (e, where), file=sys.stderr)
        return EXIT_DEVICE
    print(json.dumps(out, indent=2))
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "read",
        help="read a Modbus device once and print power/energy as JSON",
        description="Read one Modbus device once (Modbus TCP or RTU) through the edge client "
        "and a register map, and print JSON: power_w (import positive, export negative), "
        "import_wh, export_wh (quantities the device lacks are omitted), map, unit and the "
        "raw registers by address. Exit 1 on timeout, exception reply, bad frame or I/O "
        "error; exit 2 on bad arguments or an unknown map. See docs/commands/read.md.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="Modbus TCP device or gateway")
    where.add_argument("--serial", metavar="DEV", help="serial port for Modbus RTU (8N1), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=9600, help="RTU baud rate (default 9600)")
    p.add_argument("--unit", type=int, required=True, help="Modbus unit id (slave id) 0..255")
    p.add_argument(
        "--map",
        required=True,
        metavar="NAME",
        help="register map under hw/maps/ (%s) or a path to a map JSON file" % ", ".join(known_maps()),
    )
    p.add_argument("--timeout", type=float, default=1.0, metavar="S", help="reply deadline in seconds (default 1)")
    p.set_defaults(func=run)
