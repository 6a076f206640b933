"""Stored benchmark runs that the notebooks show beside their own short runs.

A benchmark of ``benchmarks/`` stores its full run in ``benchmarks/results/NAME.json`` of the course's
repository (not in the installed package): notebooks 04, 05, 08 and 10 read them from there, found
from the working directory upwards, and say so where only the package is installed (Colab).
"""

from __future__ import annotations

import json
from pathlib import Path

from .._validation import check_choice

STORED_RUNS = ("guidance_apg", "training_recipes")  # the benchmarks a notebook shows


def stored_run(name: str, start: str | Path | None = None) -> dict | None:
    """The stored results of benchmark ``name`` (``benchmarks/results/{name}.json``), looked for in
    ``start`` (default: the working directory) and its parents; None, with a printed note, if absent."""
    check_choice("stored run", name, STORED_RUNS)
    here = Path.cwd() if start is None else Path(start)
    relative = Path("benchmarks") / "results" / f"{name}.json"
    for folder in (here, *here.parents):
        if (folder / relative).is_file():
            return json.loads((folder / relative).read_text())
    print(f"the stored run ships with the course's repository ({relative.as_posix()}), not with the installed "
          "package: clone the repository to see it")
    return None
