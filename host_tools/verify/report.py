"""The report a lab can sign: ONE self-contained HTML file (charts as data-URI PNG and inline
SVG, print CSS for PDF), plus report.json (the same data) and slots.csv beside it.

The report's data is the verify document (verification.document): it is embedded in the page
as canonical JSON (<script type="application/json" id="report-data">) and the page ends with
the SHA-256 of exactly those bytes, so a reader can check that the figures on the page are the
ones the tool produced. Every setting needed to reproduce the run is on the page.
"""
import base64
import csv
import hashlib
import html
import io
import json
import os

from . import compare as cmp
from . import decision as decmod
from .output import write_atomic

CSV_NAME = "slots.csv"
JSON_NAME = "report.json"
HTML_NAME = "index.html"
PNG_POWER = "power.png"
PNG_SLOTS = "slots.png"
PNG_ERROR = "error.png"


def canonical_json(doc, indent=False):
    """The report data as text: sorted keys, ASCII, '<' escaped (safe inside <script>).

    Compact form (indent=False) is what the page embeds and its SHA-256 covers."""
    if indent:
        return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).replace(
        "<", "\\u003c")


def data_sha256(doc):
    return hashlib.sha256(canonical_json(doc).encode("ascii")).hexdigest()


def dec(x, n=6):
    """Exact Fraction -> decimal text, rounded half-even to n places ('' for None)."""
    if x is None:
        return ""
    v = round(x * 10 ** n)
    sign = "-" if v < 0 else ""
    v = abs(v)
    return "%s%d.%0*d" % (sign, v // 10 ** n, n, v % 10 ** n)


def csv_text(res):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["slot_start", "slot", "status", "device_flags", "quality", "attribution_bound_wh"]
    for d in res.directions:
        n = cmp.DIR_NAME[d]
        head += ["device_%s_wh" % n, "reference_%s_wh" % n, "error_%s_wh" % n,
                 "relative_%s_pct" % n, "allowed_%s_wh" % n]
    head.append("reasons")
    w.writerow(head)
    for r in res.rows:
        row = [r.start, r.slot_of_day, r.status, r.flags, r.quality or "",
               "" if r.bound is None else str(r.bound)]
        for d in res.directions:
            row += ["" if r.dev.get(d) is None else r.dev[d], dec(r.ref.get(d)), dec(r.err.get(d)),
                    dec(r.rel.get(d), 4), dec(r.allowed.get(d))]
        row.append("; ".join(r.reasons))
        w.writerow(row)
    return out.getvalue()


def _labels(rows):
    """x tick labels: HH:MM, with the date where the day changes."""
    out = []
    day = None
    for r in rows:
        d, hm = r.start[:10], r.start[11:16]
        out.append(hm if d == day else d[5:] + "\n" + hm)
        day = d
    return out


def _ticks(ax, rows):
    step = max(1, len(rows) // 12)
    idx = list(range(0, len(rows), step))
    labels = _labels(rows)
    ax.set_xticks(idx)
    ax.set_xticklabels([labels[i] for i in idx], fontsize=8)
    ax.set_xlim(-0.7, len(rows) - 0.3)


def charts(res, power, ref_power=None):
    """The three charts as {name: PNG bytes}. power, ref_power: (hours, W, title) or None."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res.rows
    x = list(range(len(rows)))
    excl = [r.status == "excluded" for r in rows]
    out = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        out[name] = buf.getvalue()

    fig, ax = plt.subplots(figsize=(11, 3.6), dpi=100)
    if power is not None:
        hours, watts, title = power
        ax.plot(hours, watts, lw=0.6, color="#1f5fa8", label="device trace")
        if ref_power is not None:
            ax.plot(ref_power[0], ref_power[1], lw=0.6, color="#f0a030", alpha=0.8,
                    label="reference meter trace")
            ax.legend(fontsize=8, loc="lower left")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("hours since %s" % (rows[0].start if rows else ""))
        ax.set_ylabel("power (W), import +, export -")
        ax.set_title(title)
    else:
        ax.text(0.5, 0.5, "the trace has no power column", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.16)  # fixed: tight_layout costs a redraw
    save(fig, PNG_POWER)

    nd = max(1, len(res.directions))
    fig, axes = plt.subplots(nd, 1, figsize=(11, 3.2 * nd), dpi=100, squeeze=False)
    for ax, d in zip(axes[:, 0], res.directions):
        dv = [r.dev[d] if r.dev.get(d) is not None else 0 for r in rows]
        rv = [float(r.ref[d]) if r.ref.get(d) is not None else 0 for r in rows]
        ax.bar([i - 0.2 for i in x], dv, 0.4, label="device", color="#1f5fa8")
        ax.bar([i + 0.2 for i in x], rv, 0.4, label="reference", color="#f0a030")
        for i in x:
            if excl[i]:
                ax.axvspan(i - 0.5, i + 0.5, color="#999999", alpha=0.25, lw=0)
        if not any(dv) and not any(rv):
            ax.text(0.5, 0.5, "all slots 0 Wh", ha="center", transform=ax.transAxes)
        ax.set_ylabel("%s per slot (Wh)" % cmp.DIR_NAME[d])
        ax.set_title("%s: device vs reference per 30-minute slot (grey: excluded)" % cmp.DIR_NAME[d])
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
        _ticks(ax, rows)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.09, hspace=0.45)
    save(fig, PNG_SLOTS)

    fig, axes = plt.subplots(2, nd, figsize=(6 * nd, 6.4), dpi=100, squeeze=False)
    tolp = float(res.tol) * 100
    for j, d in enumerate(res.directions):
        ax = axes[0, j]
        err = [float(r.err[d]) if r.err.get(d) is not None else 0 for r in rows]
        al = [float(r.allowed[d]) if r.allowed.get(d) is not None else 0 for r in rows]
        col = [("#e67e22" if rows[i].flag_fail else "#999999") if excl[i]
               else ("#c0392b" if rows[i].ok.get(d) is False else
                     "#8e44ad" if rows[i].status == decmod.COND_PASS else "#1f5fa8") for i in x]
        ax.fill_between(x, [-a for a in al], al, step="mid", color="#2ecc71", alpha=0.25,
                        label="allowed (±tol·max(|ref|, Emin) + 1 Wh)")
        ax.bar(x, err, 0.7, color=col, label="error = device - reference", zorder=3)
        ax.plot(x, err, "o", ms=2.5, color="black", zorder=4)
        ax.axhline(0, color="black", lw=0.6)
        used = [(abs(rows[i].err[d]), abs(rows[i].err[d]) / rows[i].allowed[d]) for i in x
                if not excl[i] and rows[i].err.get(d) is not None]
        if used:
            ax.text(0.99, 0.03, "compared slots: max |error| %s Wh, max |error|/allowed %.0f %%"
                    % (dec(max(u[0] for u in used), 3), float(max(u[1] for u in used)) * 100),
                    ha="right", fontsize=8,
                    transform=ax.transAxes, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_ylabel("error (Wh)")
        ax.set_title("%s error per slot" % cmp.DIR_NAME[d], fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
        _ticks(ax, rows)
        ax = axes[1, j]
        xs = [i for i in x if rows[i].rel.get(d) is not None and not excl[i]
              and abs(rows[i].ref[d]) >= res.min_energy_wh]
        ax.bar(xs, [float(rows[i].rel[d]) for i in xs], 0.7,
               color=["#c0392b" if rows[i].ok.get(d) is False else "#1f5fa8" for i in xs], zorder=3)
        ax.plot(xs, [float(rows[i].rel[d]) for i in xs], "o", ms=2.5, color="black", zorder=4)
        ax.axhspan(-tolp, tolp, color="#2ecc71", alpha=0.25, label="±%s %%" % cmp.pct(res.tol * 100))
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylim(min(-1.5 * tolp, *[float(rows[i].rel[d]) * 1.1 for i in xs] or [0]),
                    max(1.5 * tolp, *[float(rows[i].rel[d]) * 1.1 for i in xs] or [0]))
        ax.set_ylabel("relative error (%)")
        ax.set_title("%s relative error (slots with reference >= %s Wh)"
                     % (cmp.DIR_NAME[d], cmp.pct(res.min_energy_wh)), fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
        _ticks(ax, rows)
    fig.text(0.5, 0.985, "bars: blue pass, red fail, grey excluded, orange excluded but its "
             "device flag fails the verdict; green: allowed band", ha="center", va="top", fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.09, hspace=0.45, wspace=0.22)
    save(fig, PNG_ERROR)
    return out


def power_series(samples, rows, max_points=3000):
    """(hours since the first slot, W, title) from a trace's power column, thinned by keeping
    each bucket's extreme values so peaks stay visible; None without power."""
    pts = [(t, samples.value("power", i)) for i, t in enumerate(samples.t)
           if samples.power[i] is not None]
    if not pts:
        return None
    t0 = rows[0].slot * 1800000 if rows else pts[0][0]
    if len(pts) > max_points:
        k = (len(pts) + max_points // 2 - 1) // (max_points // 2)
        thin = []
        for j in range(0, len(pts), k):
            b = pts[j:j + k]
            lo = min(b, key=lambda p: p[1])
            hi = max(b, key=lambda p: p[1])
            thin.extend(sorted({lo, hi}))
        pts = thin
    return ([(t - t0) / 3600000 for t, _ in pts], [float(p) for _, p in pts],
            "power samples of %s (%d shown)" % (os.path.basename(samples.path), len(pts)))


def _e(x):
    return html.escape("" if x is None else str(x))


def _f(x, n=3):
    """An exact number given as text ('123/4') -> decimal text rounded to n places."""
    if x is None or x == "":
        return ""
    from fractions import Fraction
    return dec(Fraction(x), n)


CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;max-width:1180px;margin:1em auto;color:#222;
font-size:14px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:1.4em}
table{border-collapse:collapse;font-size:12.5px;margin:.4em 0}
td,th{border:1px solid #bbb;padding:2px 6px;text-align:right;vertical-align:top}
th{background:#eee}td.l,th.l{text-align:left}
.pass{color:#17752f;font-weight:bold}.fail,.conditional-fail,.inconsistent{color:#b02020;font-weight:bold}
.conditional-pass,.incomplete{color:#8e44ad;font-weight:bold}.excluded{color:#777}
.consistent{color:#1f5fa8;font-weight:bold}
.verdict{font-size:1.6em;font-weight:bold;padding:.4em .6em;border:3px solid #444;display:inline-block}
.note{background:#fff6d8;border:1px solid #e0c060;padding:.4em .6em}
code{background:#f4f4f4;word-break:break-all}img{max-width:100%}
.sign td{height:2.2em;min-width:14em}.hash{font-family:monospace;word-break:break-all}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;font-size:10pt}h2{page-break-after:avoid}
tr,img,svg{page-break-inside:avoid}.slots{font-size:8pt}a{color:inherit;text-decoration:none}}
"""


def svg_points(points):
    """Inline SVG: each load point's error in % of the reference, with the tolerance (green)
    and the guard band (purple) drawn per point; starting/no-load points as PASS/FAIL marks."""
    from fractions import Fraction
    w, h, left, top = 760, 260, 60, 20
    n = len(points)
    if not n:
        return ""
    lim = []
    for p in points:
        if p["reference_wh"] and p["allowed_wh"]:
            r = abs(Fraction(p["reference_wh"]))
            if r:
                lim.append(float(Fraction(p["allowed_wh"]) * 100 / r))
                if p["error_wh"]:
                    lim.append(abs(float(Fraction(p["error_wh"]) * 100 / r)))
    top_pct = max(lim + [1.0]) * 1.3
    pw = (w - left - 10) / n
    y0 = top + (h - top - 50) / 2

    def y(v):
        return y0 - v / top_pct * (h - top - 50) / 2

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'role="img" aria-label="error per test point">' % (w, h, w, h),
           '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (w, h),
           '<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>' % (left, y0, w - 10, y0)]
    for v in (-top_pct / 1.3, top_pct / 1.3):
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end">%+.2f %%</text>'
                   % (left - 4, y(v) + 3, v))
    out.append('<text x="4" y="12" font-size="11">error of the point in %% of the reference '
               '(green: tolerance, purple: guard band)</text>')
    colour = {"pass": "#17752f", "fail": "#b02020", "conditional-fail": "#b02020",
              "conditional-pass": "#8e44ad", "incomplete": "#999999"}
    for i, p in enumerate(points):
        x = left + i * pw
        cx = x + pw / 2
        c = colour.get(p["decision"], "#999")
        if p["allowed_wh"] and p["reference_wh"] and Fraction(p["reference_wh"]):
            r = abs(Fraction(p["reference_wh"]))
            tl = float(Fraction(p["allowed_wh"]) * 100 / r)
            g = float(Fraction(p["guard_band_wh"] or 0) * 100 / r)
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2ecc71" '
                       'fill-opacity="0.3"/>' % (x + 4, y(tl), pw - 8, y(-tl) - y(tl)))
            if g:
                for a, b in ((tl - g, tl), (-tl, -tl + g)):
                    out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
                               'fill="#8e44ad" fill-opacity="0.35"/>'
                               % (x + 4, y(b), pw - 8, y(a) - y(b)))
            e = float(Fraction(p["error_wh"]) * 100 / r)
            e = max(-top_pct, min(top_pct, e))
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (cx - pw / 6, min(y(e), y0), pw / 3, max(1, abs(y(e) - y0)), c))
        else:
            out.append('<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle" fill="%s">'
                       '%s</text>' % (cx, y0 - 6, c, _e(decmod.TEXT[p["decision"]])))
        out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>'
                   % (cx, h - 30, _e(p["id"])))
        out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="%s">%s</text>'
                   % (cx, h - 16, c, _e(decmod.TEXT[p["decision"]])))
    out.append("</svg>")
    return "".join(out)


def _kv(rows):
    return "<table>%s</table>" % "".join(
        '<tr><th class="l">%s</th><td class="l">%s</td></tr>' % (_e(k), _e(v)) for k, v in rows)


def _decl_rows(d, fields):
    from .declarations import rows
    return rows(d, fields)


def page(doc, pngs, signature=None):
    """The HTML page (str) from the report document, {name: PNG bytes} and an optional
    signature block (signature.sign)."""
    from .declarations import LAB_FIELDS, METER_FIELDS, REFERENCE_FIELDS
    integ = doc["check"] == "integration"
    v = doc["verdict"]
    title = ("Integration check of a meter's 30-minute values" if integ else
             "Accuracy verification report: 30-minute values (30分値) of a special meter (特例計量器)")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>%s — %s</title>" % (_e(doc["headline"]), _e(doc["inputs"]["device"])),
           "<style>%s</style></head><body>" % CSS, "<h1>%s</h1>" % _e(title),
           '<p class="verdict %s" id="verdict">%s</p>' % (_e(v), _e(doc["headline"])),
           "<p>Exit status %d (%s).</p>" % (doc["exit_status"], _e(doc["exit_meaning"]))]
    if integ:
        out.append('<p class="note">This is an <b>integration check</b>, not a certification: it '
                   "shows whether the 30-minute values follow from the device's own readings "
                   "(edge core vs an exact computation from the same trace) and whether the "
                   "device's register agrees with its own power integral. It gives <b>no accuracy "
                   "verdict</b> for any class: that needs the readings of a separate, calibrated "
                   "reference meter (<code>--reference</code>, <code>--reference-meter</code>).</p>")
    if doc["reasons"]:
        out.append("<ul>%s</ul>" % "".join("<li>%s</li>" % _e(x) for x in doc["reasons"]))
    pts = doc.get("points")
    if pts is not None:
        pl = doc["plan"]
        out.append('<h2 id="points">Verdict per test point (plan %s)</h2>' % _e(pl["name"]))
        out.append('<table id="point-table"><tr><th class="l">point</th><th class="l">test</th>'
                   "<th>current % of rated</th><th>voltage % of rated</th><th>frequency Hz</th>"
                   "<th>power factor</th><th>nominal W</th><th class='l'>slots (JST start)</th>"
                   "<th>device Wh</th><th>reference Wh</th><th>error Wh</th><th>error %</th>"
                   "<th>allowed Wh</th><th>guard band Wh</th><th class='l'>verdict</th>"
                   "<th class='l'>reasons</th></tr>")
        for p in pts:
            c = p["conditions"]
            out.append("<tr><td class='l'>%s</td><td class='l'>%s</td><td>%s</td><td>%s</td>"
                       "<td>%s</td><td>%s</td><td>%s</td><td class='l'>%s</td><td>%s</td>"
                       "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                       "<td class='l %s'>%s</td><td class='l'>%s</td></tr>"
                       % (_e(p["id"]), _e(p["kind"].replace("_", "-")), _e(c["current_pct"]),
                          _e(c["voltage_pct"]), _e(c["frequency_hz"]),
                          _e("—" if c["power_factor"] is None else c["power_factor"]),
                          _f(c["nominal_power_w"], 1), _e(", ".join(s[11:16] for s in p["slots"])),
                          _e(p["device_wh"]), _f(p["reference_wh"]), _f(p["error_wh"]),
                          _f(p["relative_error_pct"]), _f(p["allowed_wh"]), _f(p["guard_band_wh"]),
                          _e(p["decision"]), _e(decmod.TEXT[p["decision"]]),
                          _e("; ".join(p["reasons"]))))
        out.append("</table>")
        out.append(svg_points(pts))
    if doc["classes"]:
        out.append("<h2>Verdict per accuracy class</h2><p>The same data judged against every "
                   "class and stage whose tolerance is confirmed in hw/accuracy_classes.json; the "
                   "declared one is <b>%s</b>.</p>" % _e(doc["tolerance"]["text"]))
        ids = [p["id"] for p in pts] if pts is not None else []
        out.append("<table><tr><th class='l'>class</th><th class='l'>stage</th><th>tolerance %%"
                   "</th><th class='l'>overall</th>%s</tr>"
                   % "".join("<th class='l'>%s</th>" % _e(i) for i in ids))
        for c in doc["classes"]:
            cells = "".join("<td class='l %s'>%s</td>" % (_e(c["points"][i]),
                                                          _e(decmod.TEXT[c["points"][i]]))
                            for i in ids)
            out.append("<tr><td class='l'>%s</td><td class='l'>%s</td><td>%s</td>"
                       "<td class='l %s'>%s</td>%s</tr>"
                       % (_e(c["class"]), _e(c["stage"]), _e(c["tolerance_pct"]), _e(c["verdict"]),
                          _e(decmod.TEXT[c["verdict"]]), cells))
        out.append("</table>")
    sl = doc.get("seal")
    if sl is not None:
        out.append('<h2 id="seal">Daily seal (日次署名) of the device-day</h2>')
        out.append(_kv([("device", sl["device_id"]), ("day (JST)", sl["day"]),
                        ("seal verdict", sl["verdict"]), ("seals", sl["seals"]),
                        ("public key from", sl["key_source"]),
                        ("verified slots compared with the sealed values",
                         sl["verified_slots_compared"]),
                        ("of which differ", len(sl["verified_slots_differing"])),
                        ("failed slots", ", ".join(map(str, sl["failed_slots"])) or "none"),
                        ("unsealed slots", ", ".join(map(str, sl["unsealed_slots"])) or "none")]))
        probs = [p["what"] + ": " + p["message"] for p in sl["problems"]]
        probs += sl["verified_slots_differing"]
        if probs:
            out.append("<ul>%s</ul>" % "".join("<li>%s</li>" % _e(x) for x in probs))
    out.append("<h2>Meter under test</h2>")
    out.append(_kv(_decl_rows(doc["meter"], METER_FIELDS)) if doc["meter"] else
               "<p>Not declared (<code>--meter</code>).</p>")
    out.append("<h2>Reference</h2>")
    if doc["reference_meter"]:
        u = doc["uncertainty"]
        out.append(_kv(_decl_rows(doc["reference_meter"], REFERENCE_FIELDS) + [
            ("readings file", doc["inputs"]["reference"]),
            ("readings SHA-256", doc["inputs"]["reference_sha256"]),
            ("readings span", " to ".join(doc["inputs"]["reference_span"] or ["(slot values)"])),
            ("test uncertainty ratio (TUR)", u["tur_text"] + (
                "  — below %s : 1" % u["min_tur"] if u["tur_below_minimum"] else ""))]))
    else:
        out.append("<p>No independent reference. The values were compared with an exact "
                   "computation from the device's own trace (%s), which proves the arithmetic, "
                   "not the measurement.</p>" % _e(", ".join(
                       "%s: %s" % kv for kv in sorted(doc["summary"]["reference_sources"].items()))))
    if integ:
        c = doc["consistency"]
        out.append("<h2>What was checked</h2>")
        out.append(_kv([
            ("edge core vs computed values", "%d slots compared, %d excluded" % (
                doc["summary"]["compared"], doc["summary"]["excluded"])),
            ("register vs power integral", "%d slot(s) checked (%s), %d disagreement(s)" % (
                c["slots_checked"], ", ".join(c["directions"]) or "no register with power",
                c["disagreements"])),
            ("bound (not a verdict)", "%s: allowed = tolerance × max(|value|, E_min = %s Wh) "
             "+ %s Wh per slot" % (doc["tolerance"]["text"], doc["tolerance"]["min_energy_wh"],
                                   doc["tolerance"]["resolution_wh"]))]))
    r = doc["decision_rule"]
    if not integ:
        out.append("<h2>Decision rule</h2>")
        out.append(_kv([("rule", r["name"]), ("statement", r["statement"]), ("source", r["source"]),
                    ("tolerance", doc["tolerance"]["text"]),
                        ("allowed error TL", "tolerance × max(|reference|, E_min = %s Wh) + %s "
                         "Wh (one digit) per slot; tolerance × |reference| + one digit per plan "
                         "point" % (doc["tolerance"]["min_energy_wh"],
                                    doc["tolerance"]["resolution_wh"])),
                        ("class table checked", doc["tolerance"]["classes_checked"])]))
    if doc["plan"]:
        pl = doc["plan"]
        out.append("<h2>Test plan</h2>")
        out.append(_kv([("plan", pl["name"]), ("title", pl["title"]), ("file", pl["path"]),
                        ("plan SHA-256", pl["sha256"]),
                        ("coverage required per point", pl["coverage_pct"] + " %"),
                        ("minimum reference energy per load point", pl["min_energy_wh"] + " Wh"),
                        ("not confirmed", pl["unconfirmed"])] +
                       [("source", "%s — %s, %s (%s)" % (s.get("title"), s.get("publisher"),
                                                          s.get("url"), s.get("date")))
                        for s in pl["sources"]]))
    out.append("<h2>Laboratory and recording</h2>")
    out.append(_kv(_decl_rows(doc["lab"], LAB_FIELDS) + [
        ("device data", "%s (%s)" % (doc["inputs"]["device"], doc["inputs"]["device_kind"])),
        ("device data SHA-256", doc["inputs"]["device_sha256"]),
        ("device trace span", " to ".join(doc["inputs"]["device_span"] or ["(slot values)"]))]))
    out.append("<h2>Tool and reproduction</h2>")
    pv = doc["provenance"]
    out.append(_kv([("tool version", pv["tool_version"]),
                    ("tool source SHA-256 (edge/, host_tools/, hw/)", pv["source_sha256"]),
                    ("runtime of the edge core", pv["runtime"]),
                    ("device integrator settings", pv["integrator"]),
                    ("command line", pv["command"]), ("working directory", pv["cwd"]),
                    ("generated (UTC)", pv["generated"])]))
    out.append("<p>To reproduce: check out the tool at the commit above (or check the source "
               "SHA-256), check the inputs' SHA-256, run the command line from the working "
               "directory; slots.csv comes out identical.</p>")
    if pngs:
        out.append("<h2>Charts</h2>")
        for name, alt in ((PNG_POWER, "power curve"), (PNG_SLOTS, "device vs reference per slot"),
                          (PNG_ERROR, "error per slot with tolerance band")):
            if name in pngs:
                out.append('<p><img alt="%s" src="data:image/png;base64,%s"></p>'
                           % (alt, base64.b64encode(pngs[name]).decode("ascii")))
    out.append("<h2>Every slot</h2><table class='slots'><tr><th>slot</th><th class='l'>start</th>"
               "<th class='l'>status</th>")
    dirs = doc["summary"]["directions"]
    for n in dirs:
        out.append("<th>device %s Wh</th><th>reference Wh</th><th>error Wh</th>"
                   "<th>allowed Wh</th>" % _e(n))
    out.append("<th class='l'>flags / reasons</th></tr>")
    for s in doc["slots"]:
        q = s["quality"]
        if q == "estimated":
            q = "estimated, bound %s Wh" % (s["attribution_bound_wh"] or "unknown")
        cells = "<td>%d</td><td class='l'>%s</td><td class='l %s'>%s%s</td>" % (
            s["slot"], _e(s["slot_start"]), _e(s["status"]), _e(s["status"]),
            "" if q in (None, "exact") else "<br><small>%s</small>" % _e(q))
        for n in dirs:
            x = s[n]
            cells += "<td>%s</td><td>%s</td><td>%s</td><td>%s</td>" % (
                _e(x["device_wh"]), _f(x["reference_wh"]), _f(x["error_wh"]), _f(x["allowed_wh"]))
        cells += "<td class='l'>%s</td>" % _e("; ".join(s["reasons"]))
        out.append("<tr>%s</tr>" % cells)
    out.append("</table>")
    if not integ:
        out.append("<h2>Signatures</h2><table class='sign'><tr><th class='l'>tested by</th><td>"
                   "</td><th class='l'>date</th><td></td></tr><tr><th class='l'>checked by</th>"
                   "<td></td><th class='l'>date</th><td></td></tr></table>")
    data = canonical_json(doc)
    out.append('<script type="application/json" id="report-data">%s</script>' % data)
    out.append('<h2>Report data</h2><p>SHA-256 of the report data (the canonical JSON embedded '
               'in this page as <code>script#report-data</code>, also report.json):</p>'
               '<p class="hash" id="data-sha256">%s</p>'
               % hashlib.sha256(data.encode("ascii")).hexdigest())
    if signature is not None:
        out.append('<script type="application/json" id="report-signature">%s</script>'
                   % canonical_json(signature))
        out.append("<p>Signed by <b>%s</b> (ES256 over the report data; public key fingerprint "
                   "<code>%s</code>; check with <code>smeter verify --check-report</code>):</p>"
                   '<p class="hash">%s</p>' % (_e(signature["signer"]),
                                               _e(signature["fingerprint"]),
                                               _e(signature["signature"])))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run, outdir, written=None, signing=None):
    """Write slots.csv, report.json and index.html (last) into outdir, each atomically;
    returns the HTML path. signing: (signer, private key) to sign the report data."""
    from .reference import read_samples
    paths = [os.path.join(outdir, n) for n in (CSV_NAME, JSON_NAME, HTML_NAME)]
    if written is not None:
        written.pending.extend(paths)
    write_atomic(paths[0], csv_text(run.res), written)
    write_atomic(paths[1], canonical_json(run.doc) + "\n", written)
    samples = run.samples
    if samples is None and run.doc["inputs"]["device_kind"] == "trace":
        samples = read_samples(run.doc["inputs"]["device"])
    pngs = charts(run.res, power_series(samples, run.res.rows) if samples is not None else None,
                  power_series(run.ref_samples, run.res.rows)
                  if run.ref_samples is not None else None)
    sig = None
    if signing is not None:
        from .signature import sign
        sig = sign(canonical_json(run.doc), *signing)
    return write_atomic(paths[2], page(run.doc, pngs, sig), written)
