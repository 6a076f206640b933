"""The static-site builder (tools/build_book.py): its series list, links and landing page.

Executing and rendering the notebooks is `make book`'s job, and the browser test loads what it
wrote; these tests cover the logic that needs no kernel.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import build_book as bb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_series_is_the_readme_table_in_order():
    series = bb.read_series((ROOT / "README.md").read_text())
    assert [e.number for e in series] == [f"{i:02d}" for i in range(1, 12)]
    for e in series:  # every notebook that exists is in the table, under its own number
        assert e.stem.startswith(e.number + "_")
    written = {p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")}
    assert written <= {e.stem for e in series}


@pytest.mark.parametrize("table, match", [
    ("| 02 | x | y | ready |\n| 01 | `notebooks/01_a.ipynb` | y | ready |", "names no notebooks/"),
    ("| 02 | `notebooks/02_b.ipynb` | y | ready |\n| 01 | `notebooks/01_a.ipynb` | y | ready |", "in order"),
    ("no table here", "in order"),
])
def test_a_broken_table_is_refused(table, match):
    with pytest.raises(bb.BookError, match=match):
        bb.read_series(table)


def test_links_between_notebooks_point_at_rendered_pages():
    page = ('<a href="03_reverse_process.ipynb">next</a> <a href="../solutions/04_unet_training.ipynb#sec">x</a>'
            ' <a href="https://example.org/file.ipynb">keep</a>')
    out = bb.link_rendered_pages(page)
    assert 'href="03_reverse_process.html"' in out
    assert 'href="../solutions/04_unet_training.html#sec"' in out
    assert 'href="https://example.org/file.ipynb"' in out


def test_landing_page_lists_everything_in_order_and_marks_what_is_missing():
    series = bb.read_series((ROOT / "README.md").read_text())
    timings = {("solutions", series[1].stem): 7.0, ("notebooks", series[1].stem): 6.5}
    page = bb.landing_page(series, timings, "fast")
    assert page.index(series[0].stem) < page.index(series[1].stem) < page.index(series[-1].stem)
    assert f'href="solutions/{series[1].stem}.html"' in page and f'href="notebooks/{series[1].stem}.html"' in page
    assert page.count('class="notebook-link"') == 2
    assert page.count("in preparation") == len(series) - 1
    assert "<code>fast</code> mode" in page


def test_nav_bar_links_neighbours_and_the_other_version():
    series = bb.read_series((ROOT / "README.md").read_text())
    ready = [e for e in series if e.exists("solutions")]
    if len(ready) < 2:
        pytest.skip("needs two written notebooks")
    nav = bb.nav_bar(ready[0], "solutions", series)
    assert f'href="{ready[1].stem}.html"' in nav and "&larr;" not in nav
    assert f'href="../notebooks/{ready[0].stem}.html"' in nav and 'href="../index.html"' in nav


def test_colab_badge_becomes_a_text_link_that_needs_no_network():
    page = ('<a href="https://colab.research.google.com/github/o/n/blob/main/notebooks/02_x.ipynb">'
            '<img alt="Open In Colab" src="https://colab.research.google.com/assets/colab-badge.svg"/></a>')
    out = bb.offline_badges(page)
    assert "<img" not in out and "Open in Colab" in out and "colab.research.google.com/github/o/n" in out


def test_parallel_kernels_share_the_cpus_out():
    assert bb.kernel_threads(1, cpus=2) == 2
    assert bb.kernel_threads(2, cpus=2) == 1
    assert bb.kernel_threads(3, cpus=2) == 1  # never zero threads
    assert bb.kernel_threads(2, cpus=16) == 8


def test_jobs_below_one_is_refused(capsys):
    with pytest.raises(SystemExit):
        bb.main(["--jobs", "0", "--only", "none"])
    assert "--jobs must be 1 or more, got 0" in capsys.readouterr().err


def test_a_cell_past_its_timeout_is_retried_once_then_fails_the_build(tmp_path, monkeypatch, capsys):
    import nbformat

    monkeypatch.setattr(bb, "ROOT", tmp_path)
    for name in ("COURSE_MODE", "MPLBACKEND", "HF_HUB_OFFLINE"):  # execute() sets them; put them back after
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(60)")]
    nbformat.write(nb, tmp_path / "slow.ipynb")
    with pytest.raises(bb.BookError, match="ran past 2 s twice"):
        bb.execute(tmp_path / "slow.ipynb", "fast", timeout=2)
    assert "retrying with a fresh kernel" in capsys.readouterr().out
