"""Agent configuration (設定): one JSON object, validated once at start.

validate(obj) checks every field, collects every problem, and raises ConfigError naming
each offending field by its dotted path ("device.port: ...") so a user fixes a file in one
pass. It returns a new dict with defaults filled in. Files are read by the caller
(firmware/agent_main.py); a register map or module profile given by name is resolved there
too, because edge code opens no files. Field reference: docs/config.md.
"""
from binascii import unhexlify

from edge.errors import EdgeError

_U64 = 0xFFFFFFFFFFFFFFFF


class ConfigError(EdgeError):
    """`problems` lists (field, message) pairs; str() shows one per line."""

    kind = "config"

    def __init__(self, problems):
        super().__init__("\n".join([f + ": " + m for f, m in problems]))
        self.problems = problems

    def fields(self):
        return [f for f, _ in self.problems]


# (section, field, kind, default, lo, hi). kind: "int", "str", "hex", "map", "obj", "bool",
# "enum:a|b", "int?" (int or null). A default of _REQ marks a required field.
_REQ = "<required>"
_SPEC = (
    ("", "device_id", "int", _REQ, 0, _U64),
    ("", "key", "hex", _REQ, 16, 64),
    ("", "key_no", "int", 0, 0, 8191),
    ("", "seal_key", "hex", None, 32, 32),
    ("", "seal_key_no", "int", 0, 0, 8191),
    ("", "data_dir", "str", _REQ, 1, 200),
    ("", "queue_capacity", "int", 336, 48, 4096),
    ("device", "map", "map", _REQ, 0, 0),
    ("device", "transport", "enum:tcp|rtu", _REQ, 0, 0),
    ("device", "host", "str", None, 1, 253),
    ("device", "port", "port", None, 0, 0),
    ("device", "baud", "int", 9600, 300, 1000000),
    ("device", "rtu_gap_ms", "int", 0, 0, 1000),
    ("device", "unit", "int", 1, 0, 247),
    ("device", "poll_interval_s", "int", 5, 1, 600),
    ("device", "timeout_ms", "int", 1000, 10, 60000),
    ("device", "boundary_retry_s", "int", 10, 0, 300),
    ("integrator", "max_power_w", "int", 20000, 1, 500000),
    ("integrator", "power_exp", "int", -1, -1, 3),
    ("integrator", "max_gap_s", "int", 600, 1, 1800),
    ("integrator", "missing_ms", "int", 90000, 0, 1800000),
    ("integrator", "reg_margin_pct", "int", 150, 100, 1000),
    ("integrator", "save_every_s", "int", 240, 0, 900),
    ("integrator", "estimate_bp", "int", 50, 0, 10000),
    ("integrator", "estimate_min_wh", "int", 100, 0, 1000000),
    ("integrator", "estimate_res_wh", "int", 1, 0, 1000),
    ("wisun", "module", "map", _REQ, 0, 0),
    ("wisun", "serial", "port", _REQ, 0, 0),
    ("wisun", "baud", "int", 115200, 1200, 1000000),
    ("wisun", "rbid", "str", _REQ, 32, 32),
    ("wisun", "pwd", "str", _REQ, 1, 32),
    ("wisun", "channel", "int", _REQ, 0, 255),
    ("wisun", "pan_id", "int", _REQ, 0, 0xFFFF),
    ("wisun", "coordinator", "str", _REQ, 2, 39),
    ("wisun", "backoff_base_ms", "int", 2000, 1, 3600000),
    ("wisun", "backoff_max_ms", "int", 600000, 1, 86400000),
    ("collector", "port", "int", 0x0E1A, 0, 0xFFFF),
    ("uplink", "max_batch", "int", 48, 1, 96),
    ("uplink", "ack_timeout_ms", "int", 15000, 100, 600000),
    ("uplink", "retry_ms", "int", 5000, 10, 3600000),
    # The metering clock (edge/clock_sync.py); defaults and their sources: docs/config.md.
    ("clock", "source", "enum:uplink|external", "uplink", 0, 0),
    ("clock", "max_error_ms", "int", 1000, 1, 600000),
    ("clock", "drift_ppm", "int", 100, 0, 1000),
    ("clock", "step_ms", "int", 1000, 1, 600000),
    ("clock", "slew_ppm", "int", 500, 1, 1000),
    ("clock", "server_error_ms", "int", 50, 0, 60000),
    ("clock", "external_error_ms", "int", 0, 0, 600000),
    ("status", "file", "str", None, 1, 200),
    ("status", "every_s", "int", 60, 1, 86400),
)
_SECTIONS = ("device", "integrator", "wisun", "collector", "uplink", "clock", "status")
_TOP = ("device_id", "key", "key_no", "seal_key", "seal_key_no", "data_dir", "queue_capacity", "comment")
# Fields that were replaced, and what to write instead (a clear error, not a silent guess).
_REPLACED = {
    "clock_synced": "replaced by clock.source (docs/config.md \"clock\"): \"uplink\" synchronises "
                    "the clock over the collector's acks, \"external\" trusts a clock synchronised "
                    "outside the agent (the old clock_synced: true)",
}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check(kind, v, lo, hi):
    """None if v is acceptable, else the message."""
    if kind == "int":
        if not _is_int(v) or v < lo or v > hi:
            return "must be an integer in %d..%d, got %r" % (lo, hi, v)
    elif kind == "str":
        if not isinstance(v, str) or not lo <= len(v) <= hi:
            return "must be a string of %d..%d characters" % (lo, hi)
    elif kind == "bool":
        if v is not True and v is not False:
            return "must be true or false"
    elif kind == "hex":
        if not isinstance(v, str) or len(v) % 2 or not lo * 2 <= len(v) <= hi * 2:
            return "must be %d..%d bytes as an even number of hex digits" % (lo, hi)
        for c in v:
            if c not in "0123456789abcdefABCDEF":
                return "must be hex digits only"
    elif kind == "map":
        if not (isinstance(v, str) and v) and not isinstance(v, dict):
            return "must be a name (string) or an inline JSON object"
    elif kind == "port":
        # a TCP port number, a serial device path, or a board UART number
        if not (isinstance(v, str) and v) and not (_is_int(v) and 0 <= v <= 0xFFFF):
            return "must be a number or a device path"
    elif kind[:5] == "enum:":
        if v not in kind[5:].split("|"):
            return "must be one of " + kind[5:].replace("|", ", ")
    return None


def validate(obj):
    """Checked copy of the parsed config with defaults filled in; raises ConfigError."""
    problems = []
    if not isinstance(obj, dict):
        raise ConfigError([("(top)", "the configuration must be a JSON object")])
    out = {}
    for sec in _SECTIONS:
        src = obj.get(sec, {})
        if not isinstance(src, dict):
            problems.append((sec, "must be an object"))
            src = {}
        out[sec] = {}
    for k in obj:
        if k in _REPLACED:
            problems.append((k, _REPLACED[k]))
        elif k not in _TOP and k not in _SECTIONS:
            problems.append((k, "unknown field"))
    known = {}
    for sec, name, kind, default, lo, hi in _SPEC:
        known[(sec, name)] = 1
        src = obj if sec == "" else obj.get(sec, {})
        if not isinstance(src, dict):
            src = {}
        path = name if sec == "" else sec + "." + name
        if name in src:
            v = src[name]
            if v is None and default is None:
                pass
            else:
                msg = _check(kind, v, lo, hi)
                if msg is not None:
                    problems.append((path, msg))
                    continue
        elif default is _REQ:
            problems.append((path, "required"))
            continue
        else:
            v = default
        if sec == "":
            out[name] = v
        else:
            out[sec][name] = v
    for sec in _SECTIONS:
        src = obj.get(sec, {})
        if isinstance(src, dict):
            for k in src:
                if (sec, k) not in known and k != "comment":
                    problems.append((sec + "." + k, "unknown field"))
    bad = [f for f, _ in problems]
    dev = out["device"]
    if dev.get("transport") == "tcp":
        if not dev.get("host") and "device.host" not in bad:
            problems.append(("device.host", "required for transport tcp"))
        port = dev.get("port")
        if "device.port" not in bad and (not _is_int(port) or not 1 <= port <= 0xFFFF):
            problems.append(("device.port", "must be a TCP port 1..65535 for transport tcp"))
    elif dev.get("transport") == "rtu":
        if dev.get("port") is None and "device.port" not in bad:
            problems.append(("device.port", "required: serial device path or board UART number"))
        if dev.get("unit") == 0:
            problems.append(("device.unit", "must be 1..247 on RTU (0 is broadcast)"))
    ig = out["integrator"]
    se, mg = ig.get("save_every_s"), ig.get("max_gap_s")
    if _is_int(se) and _is_int(mg) and se > 0 and 2 * se >= mg:
        # a cut during a save resumes from the save before: the base may be 2 x save_every_s
        # old, plus the restart; older than max_gap_s across a boundary it is not attributed
        problems.append(("integrator.save_every_s", "must be below integrator.max_gap_s / 2"))
    w = out["wisun"]
    if _is_int(w.get("backoff_base_ms")) and _is_int(w.get("backoff_max_ms")):
        if w["backoff_max_ms"] < w["backoff_base_ms"]:
            problems.append(("wisun.backoff_max_ms", "must be >= wisun.backoff_base_ms"))
    ck = out["clock"]
    if _is_int(ck.get("step_ms")) and _is_int(ck.get("max_error_ms")) \
            and ck["step_ms"] > ck["max_error_ms"]:
        # a slewed correction counts in the bound until it is applied
        problems.append(("clock.step_ms", "must be <= clock.max_error_ms"))
    if problems:
        raise ConfigError(problems)
    out["key"] = unhexlify(out["key"])
    if out["seal_key"] is not None:
        out["seal_key"] = unhexlify(out["seal_key"])
    return out


def clock_sync_kwargs(cfg):
    """The keyword arguments of edge.clock_sync.ClockSync, from a validated config."""
    c = cfg["clock"]
    return {
        "max_error_ms": c["max_error_ms"], "drift_ppm": c["drift_ppm"], "step_ms": c["step_ms"],
        "slew_ppm": c["slew_ppm"], "server_error_ms": c["server_error_ms"],
        "external": c["source"] == "external", "external_error_ms": c["external_error_ms"],
    }


def wisun_driver_config(cfg):
    """The dict edge.wisun.WisunDriver takes, from a validated config."""
    w = cfg["wisun"]
    return {
        "rbid": w["rbid"],
        "pwd": w["pwd"],
        "channel": w["channel"],
        "pan_id": w["pan_id"],
        "coordinator": w["coordinator"],
        "dest_port": cfg["collector"]["port"],
        "backoff_base_ms": w["backoff_base_ms"],
        "backoff_max_ms": w["backoff_max_ms"],
    }
