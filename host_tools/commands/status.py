"""`smeter status`: show a running (or stopped) agent's counters from its status file."""
import argparse
import json
import os
import sys
import time

from host_tools.exit_codes import OK, USAGE

DESCRIPTION = """\
Print the status an agent keeps in its status file (config field status.file, relative to
data_dir; the agent rewrites it atomically every half second of real time while it runs):
polls, faults by kind, slots closed, frames sent/acked, queue depth, Wi-SUN state and gates.
On a board without a host, the same figures appear as `ev=status` lines on the serial
console (docs/agent.md).
"""


def register(subparsers):
    p = subparsers.add_parser("status", help="show an agent's counters, queue and link state",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="the agent's config: its status file is found from it")
    src.add_argument("--file", metavar="FILE", help="the status JSON file itself")
    p.add_argument("--json", action="store_true", help="print the raw status JSON")
    p.set_defaults(func=run)
    return p


def status_path(config_path):
    """The status file an agent with this config writes, or None if the config has none."""
    with open(config_path) as f:
        cfg = json.load(f)
    sf = (cfg.get("status") or {}).get("file")
    if not sf:
        return None
    data_dir = cfg.get("data_dir", ".")
    if not data_dir.startswith("/"):
        data_dir = os.path.join(os.path.dirname(os.path.abspath(config_path)), data_dir)
    return sf if sf.startswith("/") else os.path.join(data_dir, sf)


def read_status(path):
    with open(path) as f:
        st = json.load(f)
    if not isinstance(st, dict):
        raise TypeError("a JSON %s, not an object" % type(st).__name__)
    if "counters" not in st:
        raise KeyError("counters")
    return st


def format_status(st, now_ms=None):
    from edge.slots import slot_iso

    if now_ms is None:
        now_ms = time.time_ns() // 1000000
    c = st["counters"]
    age = (now_ms - st.get("wall_ms", now_ms)) / 1000.0
    rows = [
        ("device", "%d (map %s)" % (st["device_id"], st["map"])),
        ("updated", "%.1f s ago" % age),
        ("polls", "%d (%d ok)" % (c["polls"], c["polls_ok"])),
        ("faults", "%d" % c["faults"] + ("" if not st["faults"] else "  " + ", ".join(
            "%s=%d" % kv for kv in sorted(st["faults"].items())))),
        ("slots closed", "%d (last %s)" % (c["slots_closed"],
                                           slot_iso(st["last_slot"]) if st["last_slot"] >= 0 else "-")),
        ("frames", "%d sent, %d acked, %d send failed, %d ack timeouts" % (
            c["frames_sent"], c["frames_acked"], c["frames_send_failed"], c["ack_timeouts"])),
        ("queue", "%d pending (slots %d..%d), %d overflowed" % (
            st["queue_depth"], st["queue_head"], st["queue_tail"], st["overflow_slots"])),
        ("uplink", "%s, next seq %d" % (st["uplink"], st["seq_next"])),
        ("wi-sun", "%s, session %s, rate gate %s, joins %d, session losses %d" % (
            st["wisun_state"], "open" if st["wisun_session"] else "closed",
            "open" if st["wisun_rate"] else "closed", c["joins"], c["session_losses"])),
    ]
    sj = st.get("seal")
    if sj:  # daily seals (docs/seals.md): only with a seal key in the config
        from edge.seal import day_code

        d = sj["seal_last_day"]
        rows.append(("seals", "last sealed day %s, %s, outbox %s, %d made, %d acked" % (
            "%d" % day_code(d) if d >= 0 else "-", sj["seal_phase"],
            "waiting" if sj["seal_outbox"] else "empty", c.get("seals_made", 0),
            c.get("seals_acked", 0))))
    w = max(len(k) for k, _ in rows)
    return "\n".join("%s  %s" % (k.ljust(w), v) for k, v in rows)


def run(args):
    path = args.file
    try:
        if path is None:
            path = status_path(args.config)
            if path is None:
                print("smeter status: %s sets no status.file" % args.config, file=sys.stderr)
                return USAGE
        st = read_status(path)
        text = json.dumps(st, indent=1, sort_keys=True) if args.json else format_status(st)
    except (OSError, ValueError) as e:
        print("smeter status: cannot read status: %s" % e, file=sys.stderr)
        return USAGE
    except (KeyError, TypeError, AttributeError) as e:
        print("smeter status: %s: not an agent status file (%s)" % (
            path, "no field %s" % e if isinstance(e, KeyError) else e), file=sys.stderr)
        return USAGE
    print(text)
    return OK
