"""The figures of docs/BENCHMARKS.md, drawn from what the benchmark scripts measured and stored.

Each function takes the stored record (a dict as the script writes it) and a path, draws one PNG
and returns the path. The scripts call them with ``--plot``:

- ``fast_sampling.py --plot``: quality against time per image for every sampler (notebook 09's table);
- ``guidance_sweep.py --plot``: adherence and diversity against the guidance scale (notebook 05);
- ``guidance_apg.py --plot``: plain CFG against adaptive projected guidance, with and without an interval;
- ``notebook_runtime.py --plot``: each notebook's wall time per mode (benchmark 1's stored runs);
- ``training_recipes.py --plot``: min-SNR's learning curves, flow matching's time sampling, zero terminal SNR.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
RESULTS = Path(__file__).resolve().parent / "results"  # the stored measurements the figures are drawn from


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def speed_quality(record: dict, path: Path = FIGURES / "sampler_speed_quality.png") -> Path:
    """digits-FID against time per image for every sampler row: notebook 09's own plot (``speed.plot``)."""
    from course_utils.course import speed

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    speed.plot(record["rows"], ax=ax)
    fig.text(0.01, 0.01, f"{record['device']}, torch {record['torch']}, {record['date']}", fontsize=7, color="gray")
    return _save(fig, path)


def guidance(record: dict, path: Path = FIGURES / "guidance_sweep.png") -> Path:
    """Adherence (digits and text) and the digits' within-class diversity against the guidance scale w."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    d = record["digits"]
    ax1.plot(d["w"], [100 * a for a in d["adherence"]], "o-", label="digits-class: the digit asked for")
    if record.get("text"):
        t = record["text"]
        ax1.plot(t["w"], [100 * a for a in t["adherence"]], "s-", label="shapes-text: colour and shape right")
    ax1.set(xlabel="guidance scale w", ylabel="adherence (%)", ylim=(0, 105), title="Adherence")
    ax1.legend(fontsize=8)
    ax2.plot(d["w"], d["diversity"], "o-", color="tab:purple", label="digits-class samples")
    ax2.axhline(d["real_diversity"], color="gray", ls="--", label="real digits")
    ax2.set(xlabel="guidance scale w", ylabel="within-class feature spread", title="Diversity")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Classifier-free guidance ({record['samples']})", fontsize=10)
    fig.text(0.01, 0.01, f"{record['device']}, torch {record['torch']}, {record['date']}", fontsize=7, color="gray")
    return _save(fig, path)


APG_PANELS = (("adherence", "digit asked for, read back (%)", 100), ("white", "pixels at full white (%)", 100),
              ("mean", "mean brightness", 1), ("fid", "digits-FID (lower is better)", 1))


def guidance_apg(record: dict, path: Path = FIGURES / "guidance_apg.png") -> Path:
    """Adherence, full-white share, mean brightness and digits-FID against w, one line per guidance method,
    real digits dashed (FID: real against real at the run's N)."""
    fig, axes = plt.subplots(1, len(APG_PANELS), figsize=(15, 3.9))
    styles = {"CFG": ("o-", "tab:red"), "APG": ("s-", "tab:blue"), "CFG, interval": ("o--", "tab:orange"),
              "APG, interval": ("s--", "tab:green")}
    for ax, (key, ylabel, scale) in zip(axes, APG_PANELS):
        for name, c in record["methods"].items():
            marker, color = styles.get(name, ("^-", None))
            ax.plot(c["w"], [v * scale for v in c[key]], marker, color=color, label=name)
        ax.axhline(record["real"][key] * scale, color="0.4", ls=":", label="real digits")
        ax.set(xlabel="guidance scale w", ylabel=ylabel, title=ylabel.split(" (")[0])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    interval = record["interval"]
    fig.suptitle(f"CFG vs adaptive projected guidance on digits-class ({record['samples']}; interval: "
                 f"{interval[0]} <= t <= {interval[1]})", fontsize=10)
    fig.text(0.01, 0.01, f"{record['device']}, torch {record['torch']}, {record['date']}", fontsize=7, color="gray")
    return _save(fig, path)


def runtimes(records: dict[str, dict], path: Path = FIGURES / "notebook_runtimes.png") -> Path:
    """Each solution notebook's wall time, one bar per mode that has a stored run (log scale)."""
    modes = [m for m in ("fast", "cpu", "full") if m in records]
    names = sorted({Path(n).stem[:2] for m in modes for n in records[m]["notebooks"] if n.startswith("solutions/")})
    fig, ax = plt.subplots(figsize=(8, 4.4))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        rec = records[mode]
        walls = {Path(n).stem[:2]: v["wall_s"] for n, v in rec["notebooks"].items() if n.startswith("solutions/")}
        xs = [j + i * width for j, name in enumerate(names) if name in walls]
        ax.bar(xs, [walls[name] / 60 for name in names if name in walls], width, label=f"{mode} mode")
    ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(names))], names)
    ax.set(yscale="log", xlabel="notebook (solution, executed top to bottom)", ylabel="minutes (log)",
           title="Notebook runtimes per mode")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(top=ax.get_ylim()[1] * 4)  # room for the legend above the tallest bars
    fig.text(0.01, 0.01, "\n".join(f"{m}: {records[m]['device']}, torch {records[m]['torch']}, {records[m]['date']}"
                                   for m in modes), fontsize=6, color="gray", va="bottom")
    fig.tight_layout(rect=(0, 0.06 * len(modes), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_recipes(stored: dict, path: Path = FIGURES / "training_recipes.png") -> Path:
    """Benchmark 9: the min-SNR learning curves and the flow arms' Euler FIDs (each over the real-vs-real
    floor), and the zero-SNR arms' mean brightness per class against the real images'."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
    if "min-snr" in stored:
        entry = stored["min-snr"]
        for arm in entry["arms"]:
            axes[0].plot([p["step"] for p in arm["curve"]], [p["fid"] / entry["floor_fid"] for p in arm["curve"]],
                         marker="o", label=arm["label"])
        axes[0].axhline(entry["target"], color="grey", ls="--", lw=1, label=f"{entry['target']:g}x the floor")
        axes[0].set(xlabel="training step", ylabel="digits-FID / real-vs-real floor", yscale="log",
                    title="Min-SNR-5 vs the plain loss (DPM-Solver++-20)")
        axes[0].legend(fontsize=8)
    if "flow-times" in stored:
        entry = stored["flow-times"]
        for arm in entry["arms"]:
            steps = [int(n) for n in arm["euler"]]
            axes[1].plot(steps, [v["fid"] / entry["floor_fid"] for v in arm["euler"].values()], marker="o",
                         label=arm["label"])
        axes[1].set(xlabel="Euler steps", ylabel="digits-FID / real-vs-real floor", xscale="log", yscale="log",
                    title="Flow matching: how training times are drawn")
        axes[1].set_xticks([4, 8, 16], ["4", "8", "16"])
        axes[1].xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axes[1].legend(fontsize=8)
    if "zero-snr" in stored:
        entry = stored["zero-snr"]
        short = {"scaled-linear, epsilon": "SD recipe", "zero terminal SNR, v": "zero SNR + v"}
        names = [f"{short.get(arm['label'], arm['label'])}\n{spacing}" for arm in entry["arms"]
                 for spacing in arm["brightness"]]
        keys = list(entry["arms"][0]["brightness"]["leading"])
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):  # how far each class falls short of its real brightness, towards grey
            real = entry["real"][key.split(",")[0]]
            values = [abs(real) - abs(b[key]) for arm in entry["arms"] for b in arm["brightness"].values()]
            axes[2].bar([j + i * width for j in range(len(names))], values, width, label=key)
        axes[2].axhline(0, color="0.3", lw=1)
        axes[2].set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, fontsize=8)
        axes[2].set(ylabel="|real mean| - |sample mean| (> 0: greyer)",
                    title="Zero terminal SNR: the shortfall in brightness")
        axes[2].legend(fontsize=7, ncol=2)
    for ax in axes[:2]:  # plain numbers on the log axes, not powers of ten
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    any_entry = next(iter(stored.values()), None)
    if any_entry is not None:
        fig.text(0.01, 0.01, f"{any_entry['device']}, torch {any_entry['torch']}, {any_entry['date']}", fontsize=7,
                 color="gray")
    fig.tight_layout()
    return _save(fig, path)

