"""Grade learners' notebooks: ``python -m course_utils.grade PATH... [--csv FILE] [--timeout SECONDS]``.

PATH is a notebook or a folder of them (one per student, any file names; folders are searched
recursively). Each notebook runs top to bottom in a fresh kernel, in fast mode and with model hubs
switched off (``HF_HUB_OFFLINE``; the course needs no network), and every verdict its checkers print
is collected: one row per exercise with the columns ``notebook``, ``exercise``, ``verdict``
(``correct``, ``incorrect``, ``not attempted`` or ``error``) and ``hint``. A notebook that raises
runs on (later cells still get their verdicts) and its error is a row of its own; a cell that runs
past ``--timeout`` seconds ends that notebook with an ``error`` row. Nothing stops the run: the
table and a summary per notebook are printed, and written as CSV with ``--csv``.

Question widgets are answered by clicking, so a headless run cannot grade them; only the coding
exercises' checkers (``nb02.check_...``) appear in the table.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

VERDICTS = ("correct", "incorrect", "not attempted", "error")
# What a CheckResult prints (course_utils.course.exercises.core): "✅ Exercise 1 (...): correct. Well done."
_VERDICT = re.compile(r"^(?:✅|❌|✏️) (?P<exercise>.+?): (?P<verdict>correct|incorrect|not attempted)\.\s?(?P<hint>.*)$")


@dataclass
class Row:
    """One exercise of one notebook."""

    notebook: str
    exercise: str
    verdict: str
    hint: str = ""


def notebooks(paths) -> list[Path]:
    """Every ``.ipynb`` named, or found under the folders named (sorted; checkpoints left out)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p} is neither a notebook (.ipynb) nor a folder of them.")
    return found


def verdicts(nb, name: str) -> list[Row]:
    """The rows an executed notebook's outputs hold: one per checker verdict, one per cell error."""
    rows = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                rows.append(Row(name, f"cell {i}", "error", f"{out.get('ename')}: {out.get('evalue')}"[:300]))
                continue
            text = out.get("text", "") if out.get("output_type") == "stream" else out.get("data", {}).get("text/plain", "")
            for line in "".join(text).splitlines():
                m = _VERDICT.match(line.strip().strip("'\""))
                if m:
                    rows.append(Row(name, m["exercise"], m["verdict"], m["hint"].strip()))
    return rows


def grade(path: Path, timeout: int = 600) -> list[Row]:
    """Run one notebook in a fresh kernel (fast mode, offline, in a scratch folder) and read its verdicts."""
    try:
        import nbformat
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
    except ImportError as err:
        raise ImportError("grading runs notebooks: it needs nbclient and ipykernel (pip install nbclient ipykernel)."
                          ) from err
    name = str(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # not a notebook at all: a row, not a crash
        return [Row(name, "(notebook)", "error", f"cannot read it: {type(err).__name__}: {err}"[:300])]
    env = {"COURSE_MODE": "fast", "COURSE_STRICT_CHECKS": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "MPLBACKEND": "agg"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        with tempfile.TemporaryDirectory(prefix="grade-") as work:
            # the async manager: nbclient honours its per-cell timeout only with one
            km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(work) / "kernel"))
            client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=True,
                                    resources={"metadata": {"path": work}})
            stopped = None
            try:
                client.execute()
            except CellTimeoutError:
                stopped = f"a cell ran past {timeout} s; the rest of the notebook was not run"
            except DeadKernelError as err:
                stopped = f"the kernel died ({err})"[:300]
            finally:
                if km.has_kernel:
                    run_sync(km.shutdown_kernel)(now=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    rows = verdicts(nb, name)
    if stopped:  # the timed-out cell may also hold the KeyboardInterrupt of nbclient's interrupt: one row, not two
        rows = [r for r in rows if not (r.verdict == "error" and r.hint.startswith("KeyboardInterrupt"))]
    return rows + ([Row(name, "(notebook)", "error", stopped)] if stopped else [])


def summary(rows: list[Row]) -> str:
    """One line per notebook: how many exercises got each verdict."""
    lines = []
    for name in dict.fromkeys(r.notebook for r in rows):
        mine = [r for r in rows if r.notebook == name]
        counts = ", ".join(f"{sum(r.verdict == v for r in mine)} {v}" for v in VERDICTS)
        lines.append(f"{name}: {counts}")
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["notebook", "exercise", "verdict", "hint"])
        writer.writerows([r.notebook, r.exercise, r.verdict, r.hint] for r in rows)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grade", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks, or folders of them")
    parser.add_argument("--csv", type=Path, help="write the table to this CSV file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}.")
    rows = []
    for path in notebooks(args.paths):
        print(f"grading {path} ...", flush=True)
        rows += grade(path, args.timeout) or [Row(str(path), "(notebook)", "not attempted", "no checker ran")]
    for r in rows:
        print(f"{r.notebook} | {r.exercise} | {r.verdict} | {r.hint}")
    print("\n" + summary(rows))
    if args.csv:
        print(f"wrote {write_csv(rows, args.csv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
