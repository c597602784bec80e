"""The demo's PNG: per device, the power curve (the emulator's profile, per minute) and the
30-minute values (stored at the collector, with the exact truth as an outline), with the
link outages, agent kills and late slots marked."""
import os

SLOT_S = 1800


def _power_curve(summary_dev, start_s, run_s):
    from host_tools.emulator.profiles import make_profile

    prof = make_profile(summary_dev["profile"], summary_dev.get("seed", 1))
    xs, ys = [], []
    for m in range(0, run_s // 60 + 1):
        t = start_s + m * 60
        xs.append(m / 60.0)
        ys.append(abs(prof.power_w(t)) / 1000.0)
    return xs, ys


def write_png(path, summary, run):
    """Write the chart; returns path. Needs matplotlib (the dev extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devs = summary["devices"]
    fig, axes = plt.subplots(len(devs), 1, figsize=(12, 4.2 * len(devs)), squeeze=False)
    hours = run.run_s / 3600.0
    for ax, dev, d in zip(axes[:, 0], devs, run.devices):
        dev = dict(dev, seed=run.seed)
        xs, ys = _power_curve(dev, run.start_s, run.run_s)
        bx, stored, truth, colors = [], [], [], []
        for row in dev["slots"]:
            bx.append((row["slot"] * SLOT_S - run.start_s) / 3600.0 + 0.25)
            tv = (row["truth_import_wh"] or 0) + (row["truth_export_wh"] or 0)
            truth.append(tv / 1000.0)
            if row["stored"]:
                stored.append((row["import_wh"] + row["export_wh"]) / 1000.0)
                colors.append("#e6a23c" if row["delay_min"] > 60 else "#5b9bd5")
            else:
                stored.append(0)
                colors.append("#d9534f")
        ax2 = ax.twinx()
        ax2.bar(bx, stored, width=0.46, color=colors, alpha=0.55, zorder=1)
        ax2.bar(bx, truth, width=0.46, fill=False, edgecolor="#333333", linewidth=0.6, zorder=2)
        ax2.set_ylabel("30-minute value (kWh)")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(xs, ys, color="#2e7d32", linewidth=1.2, label="power (kW)")
        # kWh per half hour on a scale of half the kW axis: a bar's top is its mean power
        top = max(ys + [2 * v for v in truth + stored] + [1]) * 1.25
        ax.set_ylim(0, top)
        ax2.set_ylim(0, top / 2)
        ax.set_ylabel("power (kW)")
        ax.set_xlim(0, hours)
        ax.set_xticks(range(0, int(hours) + 1, 2 if hours > 12 else 1))
        ax.set_xlabel("hours from %s JST" % summary["run"]["start"][:16].replace("T", " "))
        for a, b in dev.get("link_outages_h", []):
            ax.axvspan(a, min(hours, b), color="#999999", alpha=0.18, label="Wi-SUN link outage")
        for i, k in enumerate(k for k in d.killed if k[0] == "sigkill"):
            ax.axvline(k[2] / 3600.0, color="#c62828", linestyle="--", linewidth=0.9,
                       label="agent killed" if i == 0 else None)
        direction = "import" if dev["import_wh"] >= dev["export_wh"] else "export"
        ax.set_title("%s (device %d, %s, %s): stored %s Wh = register delta %s Wh; "
                     "wh_lost %s, wh_duplicated %s; %d late" % (
                         dev["kind"], dev["device_id"], dev["map"], direction, dev["stored_wh"],
                         dev["register_delta_wh"], dev["wh_lost"], dev["wh_duplicated"],
                         dev["slots_late"]), fontsize=10)
        from matplotlib.patches import Patch

        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, lab in zip(handles, labels):
            seen.setdefault(lab, h)
        extra = [Patch(color="#5b9bd5", alpha=0.55, label="stored (on time)"),
                 Patch(color="#e6a23c", alpha=0.55, label="stored late (> 60 min)"),
                 Patch(fill=False, edgecolor="#333333", label="exact device energy")]
        ax.legend(list(seen.values()) + extra, list(seen) + [p.get_label() for p in extra],
                  loc="upper left", fontsize=8, ncol=2, framealpha=0.9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("smeter demo: %s h, %s, faults %s" % (
        summary["run"]["hours"], summary["run"]["runtime"], summary["run"]["faults"] or "none"),
        fontsize=12)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
