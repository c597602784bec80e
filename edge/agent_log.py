"""Structured log lines and counters of the agent (ログ・カウンタ).

A log line is one line of space-separated key=value pairs, first `t=` (edge seconds of the
metering clock) and `ev=` (what happened), so `grep ev=slot_closed` and a parser both work
on a serial console capture. Counters are a flat dict of name -> int: fixed names plus
`fault.<kind>` per fault kind (the stable `kind` of edge errors); they never reset while the
process runs and are shown by `smeter status` (docs/agent.md).
"""

COUNTER_NAMES = (
    "polls", "polls_ok", "faults", "slots_closed", "slots_stale", "slots_gap_filled",
    "frames_sent", "frames_acked", "frames_send_failed", "ack_timeouts", "acks_stale",
    "acks_rejected", "slots_acked", "joins", "session_losses", "restarts_resumed",
    "storage_errors",
)


class AgentLog:
    def __init__(self, sink=None):
        self.sink = sink
        self.counters = {}
        for n in COUNTER_NAMES:
            self.counters[n] = 0
        self.faults = {}
        self.last_fault = None

    def count(self, name, n=1):
        c = self.counters
        c[name] = c.get(name, 0) + n

    def fault(self, kind, t, detail=None):
        """Count a fault by kind and log it; never raises."""
        self.counters["faults"] += 1
        self.faults[kind] = self.faults.get(kind, 0) + 1
        self.last_fault = kind
        if detail is None:
            self.line(t, "fault", "kind", kind)
        else:
            self.line(t, "fault", "kind", kind, "detail", detail)

    def line(self, t, ev, *kv):
        """Emit `t=T ev=EV k1=v1 k2=v2 ...` (kv: alternating names and values)."""
        if self.sink is None:
            return
        parts = ["t=%d ev=%s" % (t, ev)]
        for i in range(0, len(kv) - 1, 2):
            v = kv[i + 1]
            if isinstance(v, str):
                v = v.replace(" ", "_")
            parts.append("%s=%s" % (kv[i], v))
        self.sink(" ".join(parts))


def parse_line(text):
    """A log line back into a dict of strings (host tools and tests)."""
    out = {}
    for tok in text.split():
        k, sep, v = tok.partition("=")
        if sep:
            out[k] = v
    return out
