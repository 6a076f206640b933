"""The notebook builder: solution stripping, and committed notebooks kept up to date."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import build_notebooks as bn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_strip_solutions_keeps_indentation_and_signature():
    src = "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n\nprint('after')"
    out = bn.strip_solutions(src)
    assert "return x + y" not in out and "print('after')" in out and "    y = 1" in out
    namespace = {}
    exec(out.replace("print('after')", ""), namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


@pytest.mark.parametrize(
    "src, match",
    [
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "inside a function body"),
        ("def f():\n    # BEGIN SOLUTION\n    return 1", "without an END"),
        ("def f():\n    return 1\n    # END SOLUTION", "without a BEGIN"),
        ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION", "nested"),
    ],
)
def test_authoring_errors(src, match):
    with pytest.raises(bn.AuthoringError, match=match):
        bn.strip_solutions(src)


def test_every_source_has_both_notebooks_and_they_are_fresh():
    sources = bn.sources()
    assert sources, "no notebook sources found in solutions/"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_learner_notebooks_have_no_solutions_and_have_badges_and_setup():
    for src in bn.sources():
        for folder in ("notebooks", "solutions"):
            nb = json.loads((ROOT / folder / f"{src.stem}.ipynb").read_text())
            text = "".join("".join(c["source"]) for c in nb["cells"])
            assert f"blob/main/{folder}/{src.stem}.ipynb" in "".join(nb["cells"][0]["source"])
            assert "google.colab" in "".join(nb["cells"][1]["source"])
            assert all(c.get("outputs", []) == [] for c in nb["cells"]), "outputs must be stripped"
            if folder == "notebooks":
                assert "BEGIN SOLUTION" not in text and "NotImplementedError" in text


def test_learner_text_names_no_machine_and_no_date():
    """Learners read times in their own words ("about 20 minutes on a laptop"): which CPU ran a
    measurement, and when, belongs in docs/BENCHMARKS.md, not in a notebook's prose or comments."""
    import re

    machine_or_date = re.compile(r"\b(EPYC|Xeon|Ryzen|AMD|Intel|AVX-?512|H100|H200|A100|20\d\d-[01]\d-[0-3]\d)\b")
    for src in bn.sources():
        nb = json.loads((ROOT / "notebooks" / f"{src.stem}.ipynb").read_text())
        for cell in nb["cells"]:
            text = "".join(cell["source"])
            lines = text.splitlines() if cell["cell_type"] == "markdown" else \
                [ln for ln in text.splitlines() if ln.lstrip().startswith("#")]
            found = [ln for ln in lines if machine_or_date.search(ln)]
            assert not found, f"{src.stem}: {found[0].strip()[:120]}"


def test_each_notebook_header_gives_one_time_per_mode():
    """The header's table has one row per mode, each with a time in a learner's words; a GPU row may
    say it is not yet measured (full mode needs a GPU this project does not always have)."""
    import re

    time_words = re.compile(r"\b(seconds?|minutes?|hours?)\b")
    for src in bn.sources():
        nb = json.loads((ROOT / "notebooks" / f"{src.stem}.ipynb").read_text())
        header = []
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and "course_utils" in "".join(cell["source"]) and header:
                break
            if cell["cell_type"] == "markdown":
                header += "".join(cell["source"]).splitlines()
        for mode in ("fast", "cpu", "full"):
            rows = [ln for ln in header if ln.startswith(f"| `{mode}` |")]
            assert len(rows) == 1, f"{src.stem}: {len(rows)} header rows for mode {mode!r}"
            last = rows[0].rstrip(" |").rsplit("|", 1)[-1]
            assert time_words.search(last) or (mode == "full" and "not yet measured on a GPU" in last), \
                f"{src.stem}: the {mode} row's time is {last.strip()!r}"
            if mode == "cpu":
                assert "laptop" in last, f"{src.stem}: the cpu row should say 'on a laptop': {last.strip()!r}"
