"""One device-day checked against its seals: the verdict `smeter seal verify`, the collector
and the certification report share (docs/seals.md).

Day verdict: FAIL if any seal fails (bad signature, unknown key, values differing from what
was sealed); INCOMPLETE if no seal covers the day or some stored value lies outside every
seal; PASS otherwise. Each slot gets the verdict of the seals covering it (the first one
that is not "ok"), or "unsealed".
"""
from edge import seal, slots

from host_tools.seal import pubkeys

PASS, FAIL, INCOMPLETE = "PASS", "FAIL", "INCOMPLETE"
UNSEALED = "unsealed"


class SealResult:
    __slots__ = ("raw", "parsed", "report", "key", "problems")

    def __init__(self, raw):
        self.raw = raw
        self.parsed = None
        self.report = None
        self.key = None
        self.problems = []

    @property
    def ok(self):
        return not self.problems


class DayResult:
    """`verdict`, `slots` {slot_of_day: verdict}, `seals` [SealResult], `problems`
    [(what, message)] over all seals (a seal's index is in the message)."""

    __slots__ = ("device_id", "day", "values", "seals", "slots", "problems", "verdict")

    def __init__(self, device_id, day, values):
        self.device_id = device_id
        self.day = day
        self.values = values
        self.seals = []
        self.slots = {}
        self.problems = []
        self.verdict = INCOMPLETE

    def failed_slots(self):
        return sorted(s for s, v in self.slots.items() if v not in (seal.OK, UNSEALED))

    def to_json(self):
        return {
            "device_id": self.device_id, "day": day_iso(self.day), "verdict": self.verdict,
            "seals": len(self.seals),
            "failed_slots": self.failed_slots(),
            "unsealed_slots": sorted(s for s, v in self.slots.items() if v == UNSEALED),
            "problems": [{"what": w, "message": m} for w, m in self.problems],
        }


def day_iso(code):
    return "%04d-%02d-%02d" % (code // 10000, code // 100 % 100, code % 100)


def check_day(device_id, day, values, seal_raws, key_lookup):
    """values {slot_of_day: (import_wh, export_wh, flags)}; seal_raws: seal bytes as stored;
    key_lookup(parsed_seal) -> (public key bytes or None, reason)."""
    res = DayResult(device_id, day, values)
    for i, raw in enumerate(seal_raws):
        sr = SealResult(raw)
        res.seals.append(sr)
        try:
            parsed = seal.parse(raw)
        except seal.SealError as e:
            sr.problems.append(("seal", str(e)))
        else:
            sr.parsed = parsed
            pub, why = key_lookup(parsed)
            if pub is None:
                sr.problems.append(("key", why))
            else:
                sr.key = pub
                sr.report = seal.check(raw, pub, values, device_id, day)
                sr.problems.extend(sr.report.problems)
        for what, msg in sr.problems:
            res.problems.append((what, "seal %d: %s" % (i + 1, msg) if len(seal_raws) > 1 else msg))
    covered = {}
    for sr in res.seals:
        if sr.report is not None:
            verdicts = sr.report.slots
        elif sr.parsed is not None:  # no usable key: the slots it covers cannot be vouched for
            verdicts = [(sr.parsed.first + i, seal.UNVERIFIED) for i in range(sr.parsed.count)]
        else:
            continue
        for slot, v in verdicts:
            if covered.get(slot, seal.OK) == seal.OK:
                covered[slot] = v
    for slot in range(1, seal.SLOTS_PER_DAY + 1):
        if slot in covered:
            res.slots[slot] = covered[slot]
        elif slot in values:
            res.slots[slot] = UNSEALED
    if res.problems:
        res.verdict = FAIL
    elif not seal_raws or UNSEALED in res.slots.values():
        res.verdict = INCOMPLETE
        if not seal_raws:
            res.problems.append(("seal", "no seal for this device-day"))
        else:
            res.problems.append(("unsealed", "values outside every seal: slots %s" % ", ".join(
                str(s) for s, v in sorted(res.slots.items()) if v == UNSEALED)))
    else:
        res.verdict = PASS
    return res


def registry_lookup(registry):
    """key_lookup for check_day backed by a pubkeys.Registry."""
    def lookup(parsed):
        k, why = pubkeys.key_for_seal(registry, parsed)
        return (None, why) if k is None else (k.public_key, None)
    return lookup


def day_values(store, device_id, day):
    """{slot_of_day: (import_wh, export_wh, flags)} of one device-day in the collector store."""
    n = seal.day_number(day)
    lo = slots.slot_from_day(n, 1)
    return {v.slot - lo + 1: (v.import_wh, v.export_wh, v.flags)
            for v in store.slot_values(device_id, lo, lo + seal.SLOTS_PER_DAY - 1)}


def check_store_day(store, device_id, day, registry):
    """Check one device-day of a collector store (host_tools.collector.store.Store) against
    its stored seals with a public-key registry: the call `smeter verify` makes."""
    raws = [r.raw for r in store.seals(device_id, day)]
    return check_day(device_id, day, day_values(store, device_id, day), raws,
                     registry_lookup(registry))


def check_store(store, registry):
    """DayResult for every device-day with a stored value or seal, in (device, day) order."""
    pairs = {(r.device_id, r.day) for r in store.seals()}
    pairs.update((d, seal.day_code(n)) for d, n in store.value_days())
    pairs = sorted(pairs)
    return [check_store_day(store, d, day, registry) for d, day in pairs]
