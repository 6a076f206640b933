"""Build the notebooks from their one source: ``solutions/NN_name.py`` (jupytext percent format).

For each source this writes, with outputs stripped and deterministic cell ids:

- ``solutions/NN_name.ipynb``: the complete notebook;
- ``notebooks/NN_name.ipynb``: the learner's version, where every block between
  ``# BEGIN SOLUTION`` and ``# END SOLUTION`` becomes ``raise NotImplementedError(...)``.

Both get an Open-in-Colab badge and a setup cell that installs ``course_utils`` only in Colab.
A solution block must sit inside a function body, so the learner's stub raises only when the
function is called and Run All still reaches the end of the notebook.

Usage: ``python tools/build_notebooks.py [--check] [--only NN ...]`` (``--check``: fail if a committed
notebook is stale; ``--only``: just the notebooks with these numbers).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"  # the default branch: badges open the notebook as it is there


def repository(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``owner/name`` of the public repository, from ``[project.urls] Repository`` (change it in a fork)."""
    found = re.search(r'^Repository\s*=\s*"([^"]*)"', pyproject.read_text(), re.M)
    url = found[1] if found else ""
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)/?", url)
    if m is None:
        raise AuthoringError(f"[project.urls] Repository must be https://github.com/OWNER/NAME, not {url!r}")
    return m[1]


BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")


def setup_cell(repo: str) -> str:
    """The second cell of every notebook: installs course_utils in Colab, does nothing elsewhere."""
    return f'''# Setup. In Colab this installs course_utils from the course repository and keeps Colab's own
# torch and numpy (a constraints file pins them, so pip never replaces them), then says whether a
# GPU runtime is attached. Anywhere else (JupyterLab after `make lab`) it does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess
    import tempfile

    import numpy
    import torch

    COURSE_REF = "{BRANCH}"  # teachers: pin a release tag instead, e.g. "v0.1.0" (see the README)
    constraints = os.path.join(tempfile.gettempdir(), "course-constraints.txt")
    with open(constraints, "w") as f:
        f.write(f"torch=={{torch.__version__}}\\nnumpy=={{numpy.__version__}}\\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", constraints,
                    f"course-utils @ git+https://github.com/{repo}@{{COURSE_REF}}"], check=True)
    if torch.cuda.is_available():
        print(f"GPU runtime ({{torch.cuda.get_device_name(0)}}): the notebooks run in full mode.")
    else:
        print("No GPU attached: the notebooks run in cpu mode. For full mode choose "
              "Runtime > Change runtime type > GPU, then run this cell again.")'''


class AuthoringError(ValueError):
    """A source notebook breaks the authoring rules (unmatched markers, a stub outside a function)."""


def strip_solutions(code: str, where: str = "<source>") -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block with a raising stub."""
    out: list[str] = []
    lines = code.split("\n")
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if END.match(lines[i]):
            raise AuthoringError(f"{where}: line {i + 1}: '# END SOLUTION' without a BEGIN.")
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        if not indent:
            raise AuthoringError(f"{where}: line {i + 1}: a solution block must be inside a function body, "
                                 "so the learner's stub raises only when called.")
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise AuthoringError(f"{where}: line {j + 1}: nested '# BEGIN SOLUTION'.")
            j += 1
        if j == len(lines):
            raise AuthoringError(f"{where}: line {i + 1}: '# BEGIN SOLUTION' without an END.")
        out.append(f"{indent}# YOUR CODE HERE")
        out.append(f'{indent}raise NotImplementedError("Replace this line with your code, then rerun the cell.")')
        i = j + 1
    return "\n".join(out)


def badge(rel_path: str, repo: str) -> str:
    url = f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/{rel_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def to_notebook(source: str, stem: str, rel_path: str) -> nbformat.NotebookNode:
    nb = jupytext.reads(source, fmt="py:percent")
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise AuthoringError(f"{stem}: the first cell must be a markdown title cell.")
    repo = repository()
    nb.cells[0].source = badge(rel_path, repo) + "\n\n" + nb.cells[0].source
    nb.cells.insert(1, nbformat.v4.new_code_cell(setup_cell(repo)))
    for i, cell in enumerate(nb.cells):
        cell.id = f"{stem.replace('_', '-')}-{i:03d}"
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = nbformat.NotebookNode({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def build(source_path: Path) -> dict[Path, str]:
    """The two notebooks (path -> JSON text) built from one solution source."""
    stem = source_path.stem
    text = source_path.read_text()
    learner_text = strip_solutions(text, where=str(source_path))
    result = {}
    for folder, src in (("solutions", text), ("notebooks", learner_text)):
        rel = f"{folder}/{stem}.ipynb"
        nb = to_notebook(src, stem, rel)
        nbformat.validate(nb)
        result[ROOT / rel] = nbformat.writes(nb) + "\n"
    return result


def sources() -> list[Path]:
    return sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed notebook is stale")
    parser.add_argument("--only", nargs="+", metavar="NN", default=None,
                        help="only the notebooks with these numbers (e.g. --only 03 07)")
    args = parser.parse_args(argv)
    chosen = sources()
    if args.only is not None:
        chosen = [s for s in chosen if s.name[:2] in args.only]
        if not chosen:
            parser.error(f"--only {' '.join(args.only)} matches no source; numbers are two digits, e.g. 03")
    stale = []
    for src in chosen:
        for path, text in build(src).items():
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(path.relative_to(ROOT))
            else:
                path.write_text(text)
                print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale notebooks (run `make notebooks`):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
