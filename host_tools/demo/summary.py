"""Verification of a demo run: the collector's stored 30-minute values against the device
emulators' ground truth (definitions: docs/demo.md#verification).

Energies from the truth file are exact (integer mJ, register units as decimal strings);
stored values are integer Wh. Register deltas are compared as exact Fractions, so
`wh_lost` and `wh_duplicated` are exact numbers, not rounded floats.
"""
import json
import sqlite3
from fractions import Fraction

from edge.flags import ESTIMATED, MISSING, flag_bound, names
from host_tools.accuracy_rule import threshold_wh
from host_tools.collector.timeliness import PRELIMINARY_DEADLINE_S

SLOT_S = 1800
DEADLINE_S = PRELIMINARY_DEADLINE_S  # 速報値 within 60 minutes of the slot's end (cited there)
_MJ_PER_WH = 3600000


def _wh(reg):
    """A truth counter state -> exact Wh as a Fraction."""
    text = reg["wh"]
    if "." in text:
        whole, frac = text.split(".")
        neg = whole.startswith("-")
        v = Fraction(int(whole.lstrip("-") or "0")) + Fraction(int(frac), 10 ** len(frac))
        return -v if neg else v
    return Fraction(int(text))


def read_truth_slots(path):
    """{slot: row} of the truth file's slot rows, and its header."""
    slots, header = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("type") == "slot":
                slots[r["start_s"] // SLOT_S] = r
            elif r.get("type") == "header":
                header = r
    return slots, header


def read_stored(db, device_id):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        rows = con.execute("SELECT slot, import_wh, export_wh, flags, delay_ms FROM slot_values "
                           "WHERE device_id = ?", (device_id,)).fetchall()
    finally:
        con.close()
    return {r[0]: r[1:] for r in rows}


def read_collector(db):
    """(counters dict, {reason: count} of rejected datagrams, slot conflicts per device)."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        counters = dict(con.execute("SELECT name, n FROM counters").fetchall())
        reasons = dict(con.execute("SELECT reason, COUNT(*) FROM rejections GROUP BY reason").fetchall())
        conflicts = {}
        for did, detail in con.execute("SELECT device_id, detail FROM rejections WHERE reason = 'slot_conflict'"):
            conflicts.setdefault(did, []).append(detail)
    finally:
        con.close()
    return counters, reasons, conflicts


def _delta(truth, first, last, direction):
    """Exact register delta in Wh over slots first..last (per slot, so a meter replacement
    inside the run counts the old meter to its end and the new one from its start)."""
    total = Fraction(0)
    for s in range(first, last + 1):
        r = truth[s]
        a, b = r["regs_start"].get(direction), r["regs_end"].get(direction)
        if a is None or b is None:
            return None
        if a.get("meter") == b.get("meter"):
            total += _wh(b) - _wh(a)
        else:  # replaced within the slot: the truth energy is the device's energy
            total += Fraction(r[direction + "_mj"], _MJ_PER_WH)
    return total


def device_summary(kind, device_id, truth_path, db, first_slot, n_slots, conflicts=(), rule=None):
    truth, header = read_truth_slots(truth_path)
    acc = Accuracy(rule)
    stored = read_stored(db, device_id)
    last_slot = first_slot + n_slots - 1
    rows = []
    err_max = Fraction(0)
    missing = late = flagged = 0
    max_delay_ms = 0
    flagged_deficit = Fraction(0)
    s_imp = s_exp = 0
    t_imp = t_exp = Fraction(0)
    for s in range(first_slot, last_slot + 1):
        t = truth.get(s)
        ti = Fraction(t["import_mj"], _MJ_PER_WH) if t else None
        te = Fraction(t["export_mj"], _MJ_PER_WH) if t else None
        v = stored.get(s)
        row = {"slot": s, "slot_of_day": s % 48 + 1,
               "truth_import_wh": float(ti) if t else None, "truth_export_wh": float(te) if t else None}
        if t:
            t_imp += ti
            t_exp += te
        if v is None:  # never arrived: lost, whatever the TSO later completes
            missing += 1
            row.update(stored=False)
        else:
            imp, exp, flags, delay = v
            s_imp += imp
            s_exp += exp
            row.update(stored=True, import_wh=imp, export_wh=exp, flags=flags, flag_names=names(flags),
                       delay_min=round(delay / 60000.0, 1))
            if delay > DEADLINE_S * 1000:
                late += 1
            max_delay_ms = max(max_delay_ms, delay)
            if flags & MISSING:
                flagged += 1
            if flags & ESTIMATED:
                row["bound_wh"] = flag_bound(flags)
            if t:
                err = (imp - ti) + (exp - te)
                row["error_wh"] = float(err)
                acc.add(imp, exp, flags, ti, te,
                        sum(1 for k in ("import", "export") if k in t.get("regs_start", {})))
                err_max = max(err_max, abs(err))
                if flags & MISSING and err < 0:
                    flagged_deficit += -err
        rows.append(row)
    complete = all(s in truth for s in range(first_slot, last_slot + 1))
    d_imp = _delta(truth, first_slot, last_slot, "import") if complete else None
    d_exp = _delta(truth, first_slot, last_slot, "export") if complete else None
    if d_imp is None and d_exp is None:
        raise ValueError("%s: truth file lacks the run's slots or counters" % kind)
    dirs = [(s_imp, d_imp), (s_exp, d_exp)]
    delta = sum(d for _, d in dirs if d is not None)
    stored_sum = sum(s for s, d in dirs if d is not None)
    unaccounted = delta - stored_sum
    wh_lost = max(Fraction(0), unaccounted - flagged_deficit)
    conflict_wh = 0
    for detail in conflicts:
        conflict_wh += _conflict_wh(detail)
    wh_dup = max(Fraction(0), -unaccounted) + conflict_wh
    return {
        "kind": kind, "device_id": device_id,
        "map": header.get("map") if header else None,
        "profile": header.get("profile") if header else None,
        "slots_expected": n_slots,
        "slots_stored": n_slots - missing,
        "slots_missing": missing,
        "slots_flagged_missing": flagged,
        "slots_late": late,
        "register_delta_wh": _num(delta),
        "stored_wh": stored_sum,
        "truth_wh": _num(t_imp + t_exp),
        "wh_lost": _num(wh_lost),
        "wh_duplicated": _num(wh_dup),
        "slot_conflicts": len(conflicts),
        "max_slot_error_wh": _num(err_max),
        "max_delivery_minutes": round(max_delay_ms / 60000.0, 1),
        "import_wh": s_imp, "export_wh": s_exp,
        "accuracy": acc.result(),
        "slots": rows,
    }


class Accuracy:
    """Per-slot accuracy against the truth (docs/demo.md, `accuracy`). A slot's error is |import - truth| +
    |export - truth| (what the attribution bound bounds); a value is unflagged when it is
    flagged neither `estimated` nor `missing`; its allowed error is the estimate rule's
    threshold (host_tools/accuracy_rule.py) on its truth energy, one digit per register."""

    def __init__(self, rule):
        self.rule = rule
        self.n = self.est = self.outside = self.bound_missing = self.bound_broken = 0
        self.worst = None  # (share, slot error Wh, energy Wh)

    def add(self, imp, exp, flags, ti, te, digits=1):
        """digits: the device's register directions (one digit of allowance each)."""
        self.n += 1
        err = abs(imp - ti) + abs(exp - te)
        energy = ti + te
        if flags & ESTIMATED:
            self.est += 1
            b = flag_bound(flags)
            if b < 0:
                self.bound_missing += 1
            elif err > b:
                self.bound_broken += 1
            return
        if flags & MISSING:
            return
        share = err / max(energy, 1)
        if self.worst is None or share > self.worst[0]:
            self.worst = (share, err, energy)
        if self.rule is not None and err > threshold_wh(self.rule, max(energy, 0), digits):
            self.outside += 1

    def result(self):
        w = self.worst
        return {
            "slots_checked": self.n,
            "slots_estimated": self.est,
            "estimated_share_pct": round(100.0 * self.est / self.n, 1) if self.n else 0.0,
            "max_unflagged_error_pct": round(100.0 * float(w[0]), 3) if w else 0.0,
            "max_unflagged_error_wh": round(float(w[1]), 3) if w else 0.0,
            "max_unflagged_error_of_wh": round(float(w[2]), 1) if w else 0.0,
            "unflagged_outside_share": self.outside,
            "estimated_without_bound": self.bound_missing,
            "estimated_outside_bound": self.bound_broken,
            "rule": self.rule.get("basis") if self.rule else None,
        }


def _conflict_wh(detail):
    """Wh of the refused second value in a slot_conflict log line (best effort: any
    'import_wh'/'export_wh' numbers after 'new'); 1 if the detail cannot be read, so a
    conflict never counts as zero."""
    import re

    m = re.findall(r"new[^0-9]*(\d+)[^0-9]+(\d+)", detail or "")
    if m:
        return int(m[0][0]) + int(m[0][1])
    return 1


def _num(fr):
    """Exact integers stay ints; other fractions become floats with 3 decimals."""
    fr = Fraction(fr)
    if fr.denominator == 1:
        return int(fr)
    return round(float(fr), 3)


def summarize(run):
    """The whole run's summary dict (what --json prints)."""
    counters, reasons, conflicts = read_collector(run.db)
    first = run.start_s // SLOT_S
    n = run.run_s // SLOT_S
    devs = [device_summary(d.kind, d.device_id, d.truth, run.db, first, n,
                           conflicts.get(d.device_id, ()), getattr(run, "rule", None))
            for d in run.devices]
    for d, s in zip(run.devices, devs):
        s["agent_kills"] = sum(1 for k in d.killed if k[0] == "sigkill")
        s["agent_exits"] = sum(1 for k in d.killed if k[0] == "exited")
        s["agent_end_restarts"] = sum(1 for k in d.killed if k[0] == "end_retry")
        s["agent_faults"] = _agent_faults(d.log)
        if run.runtime == "qemu":
            s["heap_size"], s["heap_peak"] = _heap(d.log)
        s["wisun"] = _read_json(d.dir + "/wisun-stats.json")
        s["emulator_faults"] = _emulator_faults(d.truth)
        s["link_outages_h"] = [[round(a / 3600.0, 2), round(b / 3600.0, 2)] for a, b in run.outage_windows(d)]
    seals = seal_days(run)
    for d, s in zip(run.devices, devs):
        s["seals"] = [x for x in seals if x["device_id"] == d.device_id]
    return {
        "seals_verified": sum(1 for x in seals if x["verdict"] == "PASS"),
        "seals_failed": sum(1 for x in seals if x["verdict"] == "FAIL"),
        "seals_incomplete": sum(1 for x in seals if x["verdict"] == "INCOMPLETE"),
        "devices": devs,
        "slots_stored": sum(d["slots_stored"] for d in devs),
        "slots_missing": sum(d["slots_missing"] for d in devs),
        "slots_late": sum(d["slots_late"] for d in devs),
        "wh_lost": _num(sum(Fraction(d["wh_lost"]) for d in devs)),
        "wh_duplicated": _num(sum(Fraction(d["wh_duplicated"]) for d in devs)),
        "frames_rejected": sum(reasons.values()) - reasons.get("slot_too_old", 0),
        "rejections": reasons,
        "max_delivery_minutes": max([d["max_delivery_minutes"] for d in devs] or [0]),
        "collector": counters,
        "run": {
            "start": _iso(run.start_s), "hours": run.hours, "speed": "%d/%d" % run.speed
            if run.speed[1] != 1 else run.speed[0], "runtime": run.runtime,
            "faults": run.faults.describe(), "seed": run.seed, "dir": run.dir,
            "real_seconds": round((run.real_end or 0) - (run.real_start or 0), 1),
        },
    }


VERDICT_KEYS = ("wh_lost", "wh_duplicated", "slots_missing", "seals_failed", "seals_incomplete")


def failures(summary):
    """What fails the demo's verdict, as "N key" strings (empty: PASS); with `drained`
    False the reason says the queues did not drain."""
    out = ["%s %s" % (summary[k], k) for k in VERDICT_KEYS if summary[k]]
    if out and summary.get("drained") is False:
        out.append("queues not drained")
    return out


def seal_days(run):
    """Every device-day of the run checked against its stored seals with the run's public
    keys (host_tools/seal/check.py, the check `smeter seal verify` makes): one dict per
    device-day with its verdict, failed and unsealed slots."""
    from edge import seal
    from host_tools.collector.store import Store
    from host_tools.seal import check, pubkeys

    reg = pubkeys.load(run.pubkeys)
    st = Store(run.db, readonly=True)
    try:
        out = []
        first, last = run.start_s // SLOT_S, (run.start_s + run.run_s) // SLOT_S - 1
        for d in run.devices:
            for day_no in range(first // 48, last // 48 + 1):
                res = check.check_store_day(st, d.device_id, seal.day_code(day_no), reg)
                j = res.to_json()
                j["seals"] = len(res.seals)
                out.append(j)
        return out
    finally:
        st.db.close()


def _iso(edge_s):
    from host_tools.emulator.simclock import edge_ms_to_iso

    return edge_ms_to_iso(edge_s * 1000)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _heap(log):
    """(heap size, largest live heap) over every boot: the agents' ev=status lines."""
    size = peak = 0
    try:
        with open(log, "rb") as f:
            for raw in f:
                if b" ev=status " in raw or b" ev=stop " in raw:
                    for tok in raw.split():
                        if tok.startswith(b"heap_peak="):
                            peak = max(peak, int(tok[10:]))
                        elif tok.startswith(b"heap_size="):
                            size = int(tok[10:])
    except (OSError, ValueError):
        pass
    return size, peak


def _agent_faults(log):
    out = {}
    try:
        with open(log, "rb") as f:
            for raw in f:
                if b" ev=fault " in raw:
                    for tok in raw.split():
                        if tok.startswith(b"kind="):
                            k = tok[5:].decode("utf-8", "replace")
                            out[k] = out.get(k, 0) + 1
    except OSError:
        pass
    return out


def _emulator_faults(truth_path):
    out = {}
    rollovers = 0
    prev = None
    with open(truth_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "fault":
                out[r["kind"]] = out.get(r["kind"], 0) + 1
            elif r.get("type") == "slot":
                for k, reg in r["regs_end"].items():
                    if reg["raw"] != reg["units"] and (prev is None or prev.get(k, {}).get("raw") == prev.get(k, {}).get("units")):
                        rollovers += 1
                prev = r["regs_end"]
    if rollovers:
        out["rollover"] = rollovers
    return out


# ---- text output ----

def format_text(summary):
    out = []
    r = summary["run"]
    out.append("smeter demo: %s, %s h at %sx, agents under %s, faults: %s" % (
        r["start"][:10], r["hours"], r["speed"], r["runtime"], r["faults"] or "none"))
    for d in summary["devices"]:
        out.append("")
        out.append("%s (device %d, %s, %s)" % (d["kind"], d["device_id"], d["map"], d["profile"]))
        out.append(" slot  JST          import Wh  export Wh   truth Wh    error  flags            delay min")
        for row in d["slots"]:
            t0 = (row["slot_of_day"] - 1) * 30
            span = "%02d:%02d-%02d:%02d" % (t0 // 60, t0 % 60, (t0 + 30) // 60 % 24, (t0 + 30) % 60)
            truth = row["truth_import_wh"] + row["truth_export_wh"] if row["truth_import_wh"] is not None else None
            if not row["stored"]:
                out.append("%5d  %s  %9s  %9s  %9s  %7s  %-15s  %9s" % (
                    row["slot_of_day"], span, "-", "-", _f(truth), "", "NOT STORED", ""))
                continue
            late = " late" if row["delay_min"] > DEADLINE_S / 60 else ""
            out.append("%5d  %s  %9d  %9d  %9s  %7s  %-15s  %9.1f%s" % (
                row["slot_of_day"], span, row["import_wh"], row["export_wh"], _f(truth),
                _f(row.get("error_wh"), signed=True), row["flag_names"] or "-", row["delay_min"], late))
        out.append(" verification: stored %s Wh, register delta %s Wh, truth %s Wh; "
                   "max slot error %s Wh" % (d["stored_wh"], d["register_delta_wh"], d["truth_wh"],
                                              d["max_slot_error_wh"]))
        out.append(" slots: %d/%d stored, %d missing, %d flagged missing, %d late (> 60 min); "
                   "max delivery %.1f min" % (d["slots_stored"], d["slots_expected"], d["slots_missing"],
                                              d["slots_flagged_missing"], d["slots_late"],
                                              d["max_delivery_minutes"]))
        a = d["accuracy"]
        out.append(" accuracy: largest unflagged slot error %.2f %% (%.1f Wh of %.0f Wh), %d unflagged "
                   "outside the estimate rule; %d of %d slots estimated (%.1f %%), %d outside their bound" % (
                       a["max_unflagged_error_pct"], a["max_unflagged_error_wh"], a["max_unflagged_error_of_wh"],
                       a["unflagged_outside_share"], a["slots_estimated"], a["slots_checked"],
                       a["estimated_share_pct"], a["estimated_outside_bound"]))
        out.append(" wh_lost: %s  wh_duplicated: %s  agent kills: %d  agent faults: %s  device faults: %s" % (
            d["wh_lost"], d["wh_duplicated"], d.get("agent_kills", 0), _kv(d.get("agent_faults", {})),
            _kv(d.get("emulator_faults", {}))))
        for x in d.get("seals", []):
            out.append(" seal %s: %s (%d seal(s))%s" % (
                x["day"], x["verdict"], x["seals"],
                "; " + "; ".join(p["message"] for p in x["problems"]) if x["problems"] else ""))
    out.append("")
    out.append("seals: %d device-day(s) verified, %d failed, %d incomplete" % (
        summary.get("seals_verified", 0), summary.get("seals_failed", 0),
        summary.get("seals_incomplete", 0)))
    out.append("total: slots_stored %d, slots_missing %d, slots_late %d, wh_lost %s, wh_duplicated %s, "
               "frames_rejected %d, max_delivery_minutes %.1f, real time %.1f s" % (
                   summary["slots_stored"], summary["slots_missing"], summary["slots_late"],
                   summary["wh_lost"], summary["wh_duplicated"], summary["frames_rejected"],
                   summary["max_delivery_minutes"], r["real_seconds"]))
    return "\n".join(out)


def _f(v, signed=False):
    if v is None:
        return "-"
    return ("%+.1f" if signed else "%.1f") % v


def _kv(d):
    return ",".join("%s=%d" % kv for kv in sorted(d.items())) or "-"
