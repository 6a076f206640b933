"""The speed-quality table of notebook 09: every sampler on one machine, the same seeds, the same N.

One row per ``SamplerSpec`` (a shipped model, a sampler and its options, a step count): wall time for ``n``
unconditional digits, the number of network evaluations (NFE), and quality as digits-KID (unbiased
at any N) and digits-FID (comparable with the floor and across rows only at N = 898, where it is
flagged ``fid_comparable``). Times depend on the machine and on what else runs on it: print them,
never assert them (``benchmarks/fast_sampling.py`` records them in docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import metrics, pretrained
from .._validation import check_positive_int
from ..config import get_device
from ..samplers import get_entry


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler setting: ``label`` for tables, the shipped ``model``, its ``sampler`` and ``steps``, and
    ``options``: ``(name, value)`` pairs for ``DiffusionModel.sample(sampler_options=...)`` (Karras sigmas)."""

    label: str
    model: str
    sampler: str
    steps: int
    options: tuple[tuple[str, object], ...] = ()

    @property
    def nfe(self) -> int:
        """Network evaluations per image (``samplers.registry``: Heun, two per step but the last)."""
        return get_entry(self.sampler).nfe(self.steps)


def spec(row: str, steps: int) -> SamplerSpec:
    """A row of the course's table by name: ``"DDPM"``, ``"DDIM"``, ``"DPM-Solver++"``,
    ``"flow Euler"``, ``"flow Heun"``, ``"student"``, ``"Euler-Karras"`` or ``"Heun-Karras"``."""
    if row not in ROWS:
        raise ValueError(f"the sampler row must be one of {sorted(ROWS)}, got {row!r}.")
    model, sampler, *options = ROWS[row]
    return SamplerSpec(f"{row}-{steps}", model, sampler, check_positive_int("steps", steps),
                       tuple(sorted(options[0].items())) if options else ())


# Karras et al. 2022's spacing (rho = 7) from EDM's sigma_max = 80: the cosine schedule's own last sigma,
# 20,291, would put 6 of 10 levels above sigma = 180 (notebook 09, section 3).
KARRAS = {"use_karras_sigmas": True, "sigma_max": 80.0}

ROWS = {  # row name -> (shipped model, sampler of samplers.SAMPLERS[, its sampler_options]); all unconditional
    "DDPM": ("digits-ddpm", "ddpm"),
    "DDIM": ("digits-ddpm", "ddim"),
    "DPM-Solver++": ("digits-ddpm", "dpmsolver++"),
    "Euler-Karras": ("digits-ddpm", "euler", KARRAS),
    "Heun-Karras": ("digits-ddpm", "heun", KARRAS),
    "flow Euler": ("digits-flow", "euler"),
    "flow Heun": ("digits-flow", "heun"),
    "student": ("digits-student", "consistency"),
}

# The table issue #7 asked for (the course text's Exercise 5), on the strong unconditional models of issue
# #32: digits-ddpm's samplers, Euler and Heun on Karras sigmas (EDM's) at about 10 and 20 network calls,
# digits-flow (the same network and budget, trained as a flow) and the student distilled from digits-ddpm.
TABLE = ([spec("DDPM", 1000)] + [spec("DDIM", s) for s in (10, 20, 50)]
         + [spec("DPM-Solver++", s) for s in (5, 10, 20)]
         + [spec("Euler-Karras", s) for s in (10, 20)] + [spec("Heun-Karras", s) for s in (5, 10)]
         + [spec("flow Euler", s) for s in (4, 8, 16)] + [spec("student", s) for s in (1, 2, 4)])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(specs, n: int = metrics.NUM_SAMPLES, seed: int = 0, device: str | torch.device = "cpu",
            batch_size: int | None = None, progress=None) -> list[dict]:
    """Sample ``n`` unconditional digits per spec from the same seed; time it and score it.

    Args:
        specs: ``SamplerSpec`` rows.
        batch_size: images per call (default: all ``n`` at once).
        progress: called as ``progress(i, spec)`` before each row (e.g. to print).
    Returns:
        One dict per spec: ``label, model, sampler, steps, nfe, n, seconds, ms_per_image, kid,
        kid_std, fid, fid_comparable`` (``fid`` is ``digits_fid(require_n=False)`` below N = 898), and
        ``sampler_options`` for a spec with options.
    """
    n = check_positive_int("n", n)
    if n < 2:
        raise ValueError("n must be at least 2 (KID and FID need a spread of samples).")
    device = get_device(device)
    rows = []
    for i, s in enumerate(specs):
        if not isinstance(s, SamplerSpec):
            raise TypeError(f"specs must be SamplerSpec rows (see speed.spec), got {type(s).__name__}.")
        if progress is not None:
            progress(i, s)
        model = pretrained.load(s.model, device=device)
        _sync(device)
        start = time.perf_counter()
        x = model.sample(n, steps=s.steps, sampler=s.sampler, batch_size=batch_size or n,
                         generator=torch.Generator().manual_seed(seed), sampler_options=dict(s.options) or None)
        _sync(device)
        seconds = time.perf_counter() - start
        kid, kid_std = metrics.digits_kid(x)
        rows.append({"label": s.label, "model": s.model, "sampler": s.sampler, "steps": s.steps, "nfe": s.nfe,
                     "n": n, "seconds": seconds, "ms_per_image": 1000 * seconds / n, "kid": kid, "kid_std": kid_std,
                     "fid": metrics.digits_fid(x, require_n=False), "fid_comparable": n == metrics.NUM_SAMPLES,
                     **({"sampler_options": dict(s.options)} if s.options else {}), "samples": x})
    return rows


def from_reference(labels, n: int = metrics.NUM_SAMPLES) -> list[dict]:
    """Rows of the stored reference run (``reference_table``), marked ``"source": "reference run (device, date)"``.

    For rows too slow to rerun on a CPU (DDPM-1000 at N = 898 is 1,000 calls on 898 digits): their
    quality is what the same model, sampler and seed gave there, but their time is that machine's,
    and tables and plots say so. ``n`` must be the reference run's N, so that the rows compare with live ones.
    """
    ref = reference_table()
    if n != ref["n"]:
        raise ValueError(f"the reference run drew N = {ref['n']} digits per row; live rows at n = {n} would not "
                         f"compare with it. Measure every row live instead, or use n = {ref['n']}.")
    by_label = {r["label"]: r for r in ref["rows"]}
    missing = [label for label in labels if label not in by_label]
    if missing:
        raise ValueError(f"no reference row for {missing}; the reference run has {list(by_label)}.")
    where = f"{ref['device']}, {ref['date']}"
    return [dict(by_label[label], source=f"reference run ({where})") for label in labels]


def ratios(rows: list[dict], reference: str, key: str = "fid") -> dict[str, float]:
    """``row[key] / reference_row[key]`` for every row (e.g. each FID over DDPM-1000's)."""
    ref = [r for r in rows if r["label"] == reference]
    if not ref:
        raise ValueError(f"no row labelled {reference!r}; labels: {[r['label'] for r in rows]}.")
    return {r["label"]: r[key] / ref[0][key] for r in rows}


def markdown_table(rows: list[dict], reference: str | None = None) -> str:
    """The rows as a Markdown table, each with its model (with ``FID / reference FID`` when ``reference``
    names a row: a ratio across models compares the models as much as the samplers). A row's ``"note"``
    (a caveat stored with a reference row) is marked ‡ and printed below."""
    rel = ratios(rows, reference) if reference else {}
    head = "| sampler | model | NFE | wall s | ms / image | digits-FID | KID x 1000 |" + (" FID / ref |" if rel else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        mark = (" †" if "source" in r else "") + (" ‡" if "note" in r else "")
        cells = [r["label"] + mark, r["model"], str(r["nfe"]), f"{r['seconds']:.2f}",
                 f"{r['ms_per_image']:.2f}",
                 f"{r['fid']:.3f}" + ("" if r["fid_comparable"] else "*"), f"{1000 * r['kid']:.1f}"]
        if rel:
            cells.append(f"{rel[r['label']]:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    if any(not r["fid_comparable"] for r in rows):
        lines.append(f"\n\\* N = {rows[0]['n']}: below the N = {metrics.NUM_SAMPLES} of the floor, FID is biased "
                     "upwards; compare these rows with each other, and trust KID more.")
    for source in dict.fromkeys(r["source"] for r in rows if "source" in r):
        lines.append(f"\n† not run here: from the {source}, with the same model, sampler and seed; its "
                     "time is that machine's.")
    for note in dict.fromkeys(r["note"] for r in rows if "note" in r):  # a stored row's own caveat
        lines.append(f"\n‡ {note}")
    return "\n".join(lines)


def plot(rows: list[dict], ax=None, key: str = "fid"):
    """Quality (``key``) against wall time per image, one line per sampler family, log time axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.5))
    families: dict[str, list[dict]] = {}
    for r in rows:
        families.setdefault(r["label"].rsplit("-", 1)[0], []).append(r)
    for family, rs in families.items():
        rs = sorted(rs, key=lambda r: r["ms_per_image"])
        ax.plot([r["ms_per_image"] for r in rs], [r[key] for r in rs], "o-", label=family)
        for r in rs:
            copied = "source" in r  # a row from the reference run: said in its label, written leftwards to fit
            text = f"{r['steps']} (reference run)" if copied else f"{r['steps']}" + (" ‡" if "note" in r else "")
            ax.annotate(text, (r["ms_per_image"], r[key]),
                        textcoords="offset points", xytext=(-4, 6) if copied else (4, 4), fontsize=8,
                        ha="right" if copied else "left")
    reference = [r for r in rows if r["label"] == "DDPM-1000"]
    if reference:
        ax.axhline(reference[0][key], color="C0", ls="--", lw=0.8, label=f"DDPM-1000 ({reference[0][key]:.2f})")
    floor = metrics.floor()["fid"] if key == "fid" and all(r["fid_comparable"] for r in rows) else None
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":", label=f"real vs real ({floor:.2f})")
    ax.set_xscale("log")
    if key == "fid" and all(r["fid"] > 0 for r in rows) and max(r["fid"] for r in rows) > 10 * min(r["fid"] for r in rows):
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))  # 0.2, not 2 x 10^-1
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("wall time per image (ms, log scale; labels: steps)")
    ax.set_ylabel({"fid": "digits-FID (lower is better)", "kid": "digits-KID (lower is better)"}.get(key, key))
    ax.set_title(f"Speed against quality, {rows[0]['n']} unconditional digits per sampler")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax


def within(value: float, reference: float, factor: float) -> bool:
    """Whether ``value <= factor * reference`` (for the targets of issue #7), finite values only."""
    return math.isfinite(value) and math.isfinite(reference) and value <= factor * reference


REFERENCE = Path(__file__).parent / "recorded" / "speed_table.json"


def reference_table() -> dict:
    """The recorded run of ``benchmarks/fast_sampling.py``: ``{"device", "torch", "date", "n", "seed", "rows"}``."""
    if not REFERENCE.exists():
        raise FileNotFoundError(f"{REFERENCE} is missing; run `python benchmarks/fast_sampling.py --write`.")
    return json.loads(REFERENCE.read_text())


def write_reference(record: dict, path: Path = REFERENCE) -> Path:
    """Store a benchmark run atomically (a temporary file, then a rename)."""
    if not {"device", "torch", "date", "n", "rows"} <= set(record):
        raise ValueError("record needs device, torch, date, n and rows.")
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp creates it private; the table ships with the package
    os.replace(tmp, path)
    return Path(path)


def __getattr__(name: str):
    if name == "FAMILIES":  # its name until 0.2, when "family" came to mean a kind of model (course_utils.families)
        warnings.warn("course_utils.speed.FAMILIES is now course_utils.course.speed.ROWS; the old name is removed in "
                      "course_utils 0.3.", DeprecationWarning, stacklevel=2)
        return ROWS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
