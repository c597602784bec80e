"""The certifier's report: one HTML page, PNG charts beside it, and the per-slot CSV.

Readable without the tool: every setting needed to reproduce the run (tool version, trace
SHA-256, runtime, class and tolerance, the exact command) is on the page, and the CSV holds
the exact per-slot figures (reference rounded half-even to 6 decimals of a Wh).
"""
import csv
import html
import io
import os

from . import compare as cmp

CSV_NAME = "slots.csv"
PNG_POWER = "power.png"
PNG_SLOTS = "slots.png"
PNG_ERROR = "error.png"


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
    head = ["slot_start", "slot", "status", "device_flags"]
    for d in res.directions:
        n = cmp.DIR_NAME[d]
        head += ["device_%s_wh" % n, "reference_%s_wh" % n, "error_%s_wh" % n,
                 "relative_%s_pct" % n, "allowed_%s_wh" % n]
    head.append("reasons")
    w.writerow(head)
    for r in res.rows:
        row = [r.start, r.slot_of_day, r.status, r.flags]
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


def charts(res, power, outdir, ref_power=None):
    """Write the three PNGs. power, ref_power: (hours list, W list, title) or None."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res.rows
    x = list(range(len(rows)))
    excl = [r.status == "excluded" for r in rows]

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
    fig.savefig(os.path.join(outdir, PNG_POWER))
    plt.close(fig)

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
    fig.savefig(os.path.join(outdir, PNG_SLOTS))
    plt.close(fig)

    fig, axes = plt.subplots(2, nd, figsize=(6 * nd, 6.4), dpi=100, squeeze=False)
    tolp = float(res.tol) * 100
    for j, d in enumerate(res.directions):
        ax = axes[0, j]
        err = [float(r.err[d]) if r.err.get(d) is not None else 0 for r in rows]
        al = [float(r.allowed[d]) if r.allowed.get(d) is not None else 0 for r in rows]
        col = [("#e67e22" if rows[i].flag_fail else "#999999") if excl[i]
               else ("#c0392b" if rows[i].ok.get(d) is False else "#1f5fa8") for i in x]
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
    fig.savefig(os.path.join(outdir, PNG_ERROR))
    plt.close(fig)


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
    return html.escape(str(x))


def page(res, meta):
    w = res.worst
    ok = res.verdict == "pass"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>smeter verify: %s %s</title>" % (_e(res.verdict.upper()), _e(meta["trace"])),
           "<style>body{font-family:sans-serif;max-width:1150px;margin:1em auto;color:#222}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;"
           "padding:2px 6px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
           ".pass{color:#17752f}.fail{color:#b02020}.excluded{color:#777}"
           ".verdict{font-size:2em;font-weight:bold}code{background:#f4f4f4}</style></head><body>",
           "<h1>Certification report: 30-minute values (30分値) of a special meter (特例計量器)</h1>",
           '<p class="verdict %s">%s</p>' % ("pass" if ok else "fail",
                                            "PASS" if ok else "FAIL"),
           "<p>Every 30-minute value the edge core produced from the trace was compared with the "
           "reference; the verdict holds for the tolerance below.</p>"]
    if res.verdict_reasons:
        out.append("<ul>%s</ul>" % "".join("<li>%s</li>" % _e(x) for x in res.verdict_reasons))
    out.append("<h2>Settings and reproduction</h2><table>")
    fields = [
        ("tool version", meta["tool_version"]),
        ("trace", meta["trace"]), ("trace SHA-256", meta["trace_sha256"]),
        ("reference", meta["reference"]),
        ("reference SHA-256", meta["reference_sha256"] or "(the trace above)"),
        ("reference source per direction", meta["reference_sources"]),
        ("runtime", meta["runtime"]),
        ("accuracy class", meta["class"] or "(none: explicit tolerance)"),
        ("stage", meta["stage"] or "(none: explicit tolerance)"),
        ("tolerance", meta["tolerance"]),
        ("minimum energy Emin (Wh)", meta["min_energy_wh"]),
        ("resolution (Wh)", meta["resolution_wh"]),
        ("device flags that fail the verdict", meta["fail_on_flags"]),
        ("excluded slots allowed", meta["max_excluded"]),
        ("class table checked", meta["classes_checked"]),
        ("device integrator settings", meta["integrator"]),
        ("command line", meta["command"]),
        ("working directory", meta["cwd"]),
        ("samples in the reference trace", meta["reference_samples"]),
        ("generated (UTC)", meta["generated"]),
    ]
    for k, v in fields:
        out.append('<tr><th class="l">%s</th><td class="l"><code>%s</code></td></tr>' % (_e(k), _e(v)))
    out.append("</table>")
    out.append("<p>To reproduce: check out the tool at the commit above, check the trace's "
               "SHA-256 (<code>sha256sum</code>), and run the command line from the working "
               "directory. The per-slot CSV must come out identical.</p>")
    out.append("<h2>How values are compared</h2><ul>"
               "<li><b>error</b> = device value − reference value (Wh), per slot, import and "
               "export separately.</li>"
               "<li><b>relative error</b> = error / reference × 100 %; not defined when the "
               "reference is 0.</li>"
               "<li><b>allowed</b> = tolerance × max(|reference|, Emin) + resolution: below Emin "
               "the tolerance applies to Emin (an absolute bound), and one digit of the whole-Wh "
               "30-minute value is always allowed.</li>"
               "<li>A slot <b>passes</b> when |error| ≤ allowed in every compared direction; the "
               "day total (sums over the compared slots) must pass the same rule.</li>"
               "<li>Slots the device flagged, slots the reference does not fully cover and slots "
               "missing on either side are <b>excluded</b> and listed with their reasons. A slot "
               "the device flagged with one of the flags that fail the verdict (default "
               "<code>mismatch</code>: its own register and power disagree) fails it although it "
               "is excluded, and so do more excluded slots than allowed.</li>"
               "<li>The computed reference is exact (rational arithmetic): the trapezoid integral "
               "of the power samples split at slot boundaries and zero crossings, or the register "
               "delta where the trace has that register.</li></ul>")
    out.append("<h2>Result</h2><table><tr><th class='l'>figure</th><th>value</th></tr>")
    out.append("<tr><td class='l'>slots compared / excluded</td><td>%d / %d</td></tr>"
               % (len(res.compared), len(res.excluded)))
    if w is not None:
        r, d, u = w
        out.append("<tr><td class='l'>worst slot (largest share of its allowed error)</td>"
                   "<td>slot %d (%s) %s: device %s Wh, reference %s Wh, error %s Wh (%s), "
                   "%.1f %% of the allowed %s Wh</td></tr>"
                   % (r.slot_of_day, _e(r.start), cmp.DIR_NAME[d], r.dev[d], dec(r.ref[d], 3),
                      dec(r.err[d], 3), _e(cmp.rel_text(r.rel[d])), float(u) * 100,
                      dec(r.allowed[d], 3)))
    if res.worst_rel is not None:
        r, d = res.worst_rel
        out.append("<tr><td class='l'>largest relative error (slots ≥ Emin)</td>"
                   "<td>slot %d (%s) %s: %s</td></tr>"
                   % (r.slot_of_day, _e(r.start), cmp.DIR_NAME[d], _e(cmp.rel_text(r.rel[d]))))
    for d in res.directions:
        t = res.totals[d]
        out.append("<tr><td class='l'>Σ %s over compared slots</td><td>device %d Wh, reference "
                   "%s Wh, error %s Wh (%s), allowed %s Wh: <span class='%s'>%s</span></td></tr>"
                   % (cmp.DIR_NAME[d], t["dev"], dec(t["ref"], 3), dec(t["err"], 3),
                      _e(cmp.rel_text(t["rel"])), dec(t["allowed"], 3),
                      "pass" if t["ok"] else "fail", "pass" if t["ok"] else "fail"))
    out.append("</table>")
    out.append("<h2>Charts</h2>")
    for name, alt in ((PNG_POWER, "power curve"), (PNG_SLOTS, "device vs reference per slot"),
                      (PNG_ERROR, "error per slot with tolerance band")):
        out.append('<p><img src="%s" alt="%s" style="max-width:100%%"></p>' % (name, alt))
    out.append("<h2>Excluded slots</h2>")
    if res.excluded:
        out.append("<table><tr><th>slot</th><th class='l'>start</th><th class='l'>reasons</th></tr>")
        for r in res.excluded:
            out.append("<tr><td>%d</td><td class='l'>%s</td><td class='l'>%s</td></tr>"
                       % (r.slot_of_day, _e(r.start), _e("; ".join(r.reasons))))
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out.append("<h2>Every slot</h2><p>Also as <a href='%s'>%s</a>.</p><table><tr><th>slot</th>"
               "<th class='l'>start</th><th class='l'>status</th>" % (CSV_NAME, CSV_NAME))
    for d in res.directions:
        n = cmp.DIR_NAME[d]
        out.append("<th>device %s Wh</th><th>reference %s Wh</th><th>error Wh</th><th>rel %%</th>"
                   "<th>allowed Wh</th>" % (n, n))
    out.append("<th class='l'>flags / reasons</th></tr>")
    for r in res.rows:
        cells = "<td>%d</td><td class='l'>%s</td><td class='l %s'>%s</td>" % (
            r.slot_of_day, _e(r.start), r.status, r.status)
        for d in res.directions:
            cells += "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>" % (
                "" if r.dev.get(d) is None else r.dev[d], dec(r.ref.get(d), 3),
                dec(r.err.get(d), 3), dec(r.rel.get(d), 3), dec(r.allowed.get(d), 3))
        cells += "<td class='l'>%s</td>" % _e("; ".join(r.reasons))
        out.append("<tr>%s</tr>" % cells)
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


def write_report(res, meta, outdir, samples=None, ref_samples=None):
    """Write index.html, slots.csv and the PNGs into outdir; returns the HTML path.

    samples: the trace's Samples for the power chart (read again from meta['trace'] if None);
    ref_samples: a reference meter's Samples, drawn beside it when they have power."""
    os.makedirs(outdir, exist_ok=True)
    if samples is None:
        from .reference import read_samples
        samples = read_samples(meta["trace"])
    with open(os.path.join(outdir, CSV_NAME), "w", encoding="utf-8", newline="") as f:
        f.write(csv_text(res))
    charts(res, power_series(samples, res.rows), outdir,
           power_series(ref_samples, res.rows) if ref_samples is not None else None)
    path = os.path.join(outdir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(res, meta))
    return path
