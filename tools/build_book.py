"""Render the course to a static site: executed notebooks as HTML, and a landing page.

``make book`` runs this. Every notebook (solutions and learner versions) is executed top to
bottom in ``COURSE_MODE`` (``fast`` unless set), each in a scratch folder of its own so nothing
is written into the repository, then rendered with nbconvert's ``lab`` template. Plots are embedded
in the pages, so they read without a kernel or a server; links between notebooks point at the
rendered pages. The landing page lists the whole series in order, from the README's table (the
one list of notebooks), with the notebooks not written yet marked as such.

With ``--jobs N`` N notebooks run at once (the Makefile passes ``JOBS``), each kernel's torch on
its share of the CPUs.

Usage: ``python tools/build_book.py [--out build/book] [--mode fast|cpu|full] [--only 02 03] [--jobs 2]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import multiprocessing
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"solutions": "complete", "notebooks": "learner version"}
_ROW = re.compile(r"^\|\s*(?P<num>\d\d)\s*\|\s*(?P<cell>[^|]*?)\s*\|\s*(?P<what>[^|]*?)\s*\|\s*(?P<status>[^|]*?)\s*\|$")


class BookError(RuntimeError):
    """A notebook failed to execute, or the series table could not be read."""


@dataclass(frozen=True)
class Entry:
    number: str
    stem: str
    what: str

    def exists(self, folder: str, root: Path = ROOT) -> bool:
        return (root / folder / f"{self.stem}.ipynb").exists()


def read_series(readme: str) -> list[Entry]:
    """The README's notebook table, in order: number, file stem and what the learner does."""
    entries = []
    for line in readme.splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        stem = re.search(r"notebooks/(\d\d_\w+)\.ipynb", m["cell"])
        if stem is None:
            raise BookError(f"README table row {m['num']} names no notebooks/NN_name.ipynb file: {line!r}")
        entries.append(Entry(m["num"], stem[1], m["what"]))
    numbers = [e.number for e in entries]
    if not entries or numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise BookError(f"the README's notebook table must list the notebooks once each, in order; got {numbers}")
    return entries


def link_rendered_pages(page: str) -> str:
    """Point links to sibling notebooks (``03_x.ipynb``) at their rendered pages (``03_x.html``)."""
    return re.sub(r'href="((?:\.\./(?:solutions|notebooks)/)?\d\d_\w+)\.ipynb(#[^"]*)?"',
                  lambda m: f'href="{m[1]}.html{m[2] or ""}"', page)


def offline_badges(page: str) -> str:
    """The Colab badge as a text link: the page then shows every image without the network."""
    return re.sub(r'<img[^>]*alt="Open In Colab"[^>]*>',
                  '<span style="border:1px solid #999;border-radius:3px;padding:1px 6px;font:13px sans-serif">'
                  'Open in Colab</span>', page)


CELL_TIMEOUT_S = {"fast": 600, "cpu": 3600, "full": 3600}  # a cell longer than this counts as hung


def execute(path: Path, mode: str, timeout: int | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Run a notebook in a scratch folder with ``COURSE_MODE=mode``; return it and the seconds taken.

    The kernel talks over Unix sockets in that folder (no TCP). A cell that outlives its timeout
    (a lost kernel message was seen once on a heavily loaded machine) gets one more try with a
    fresh kernel before the build fails.
    """
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    os.environ["COURSE_MODE"] = mode  # the kernel inherits this process's environment
    os.environ.pop("MPLBACKEND", None)  # draw inline, as for a learner
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    timeout = timeout or CELL_TIMEOUT_S[mode]
    for attempt in (1, 2):
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory(prefix=f"book-{path.stem}-") as work:
            # the async manager: with a synchronous one nbclient never enforces the per-cell timeout
            km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(work) / "kernel"))
            client = NotebookClient(nb, km=km, timeout=timeout, store_widget_state=True,
                                    resources={"metadata": {"path": work}})
            start = time.perf_counter()
            try:
                client.execute()
                return nb, time.perf_counter() - start
            except CellTimeoutError as exc:
                if attempt == 2:
                    raise BookError(f"{path.relative_to(ROOT)}: a cell ran past {timeout} s twice:\n{exc}") from None
                print(f"{path.relative_to(ROOT)}: a cell ran past {timeout} s; retrying with a fresh kernel", flush=True)
            except CellExecutionError as exc:
                raise BookError(f"{path.relative_to(ROOT)} failed in {mode} mode:\n{exc}") from None
            finally:
                if km.has_kernel:  # the client does not stop a kernel it was handed
                    run_sync(km.shutdown_kernel)(now=True)
    raise AssertionError("unreachable")


def nav_bar(entry: Entry, folder: str, series: list[Entry]) -> str:
    """Links to the index, the previous and next ready notebooks, and the other version of this one."""
    ready = [e for e in series if e.exists(folder)]
    i = ready.index(entry)
    links = ['<a href="../index.html">course index</a>']
    if i > 0:
        links.append(f'<a href="{ready[i - 1].stem}.html">&larr; {ready[i - 1].number}</a>')
    if i + 1 < len(ready):
        links.append(f'<a href="{ready[i + 1].stem}.html">{ready[i + 1].number} &rarr;</a>')
    other = "notebooks" if folder == "solutions" else "solutions"
    links.append(f'<a href="../{other}/{entry.stem}.html">{FOLDERS[other]}</a>')
    return ('<nav class="course-nav" style="font:14px sans-serif;padding:8px 16px;background:#f1f3f4;'
            'border-bottom:1px solid #ddd;">' + " &middot; ".join(links)
            + f' <span style="float:right;color:#555">{html.escape(FOLDERS[folder])}</span></nav>')


def install_mathjax(out: Path) -> str | None:
    """Copy MathJax (from the jupyter-server-mathjax package) next to the pages, so equations render
    offline; return the URL a page one folder down uses, or None to keep nbconvert's CDN default."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        print("jupyter-server-mathjax is not installed: pages load MathJax from a CDN (equations need the network)")
        return None
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", out / "_static" / "mathjax",
                    dirs_exist_ok=True)
    return "../_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


# The style: MathJax also puts a hidden copy of each equation as MathML in the page for screen
# readers, and its NativeMML styles give that copy's \mathcal / \mathbb letters TeX web fonts
# (fonts/HTML-CSS/TeX/otf/...) that the packaged MathJax does not ship. A browser fetched them
# (404) whenever it laid out that hidden MathML before leaving the page, so the book test failed or
# passed with the timing. The hidden copy is read, not seen: any local font does.
STIX_CONFIG = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web",
                                 imageFont: null}, SVG: {font: "STIX-Web"}});
</script>
<style>.MJX_Assistive_MathML, .MJX_Assistive_MathML * { font-family: serif !important; }</style>
"""


def render(nb: nbformat.NotebookNode, title: str, nav: str, mathjax_url: str | None = None) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", **({"mathjax_url": mathjax_url} if mathjax_url else {}))
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    body = link_rendered_pages(offline_badges(body))
    if mathjax_url:  # the packaged MathJax carries the STIX-Web fonts only
        body = body.replace("</head>", STIX_CONFIG + "</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m[1] + nav, body, count=1)


def landing_page(series: list[Entry], timings: dict[tuple[str, str], float], mode: str) -> str:
    rows = []
    for e in series:
        cells = []
        for folder, label in FOLDERS.items():
            if (folder, e.stem) in timings:
                cells.append(f'<a class="notebook-link" href="{folder}/{e.stem}.html">{label}</a>'
                             f' <small>({timings[folder, e.stem]:.0f} s)</small>')
        links = " &middot; ".join(cells) if cells else "<i>in preparation</i>"
        rows.append(f"<tr><td>{e.number}</td><td><code>{e.stem}</code><br>{html.escape(e.what)}</td>"
                    f"<td>{links}</td></tr>")
    import torch

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Diffusion models, hands-on</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 900px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 8px; text-align: left; vertical-align: top; }}
small, .meta {{ color: #666; }}
</style></head>
<body>
<h1>Diffusion models, hands-on</h1>
<p>A numbered series of notebooks that teaches diffusion models by building them. Each page below
is a notebook executed top to bottom, with its plots: the <b>complete</b> version has every
exercise solved; the <b>learner version</b> is what you work in (its checkers say
"not attempted"). To run them yourself, see the README (<code>make lab</code>) or open a
notebook in Colab from its badge.</p>
<table>
<tr><th>#</th><th>notebook</th><th>rendered</th></tr>
{chr(10).join(rows)}
</table>
<p class="meta">Executed in <code>{mode}</code> mode on {html.escape(platform.machine())} /
{html.escape(platform.processor() or platform.system())}, Python {platform.python_version()},
torch {torch.__version__}, {when}. Times are wall-clock seconds per notebook.</p>
</body></html>
"""


def kernel_threads(jobs: int, cpus: int | None = None) -> int:
    """Threads each kernel's torch may use when ``jobs`` notebooks run at once: the CPUs shared out."""
    return max(1, (cpus or os.cpu_count() or 1) // jobs)


def build_page(folder: str, entry: Entry, series: list[Entry], out: Path, mode: str, timeout: int | None,
               mathjax_url: str | None) -> float:
    """Execute one notebook, write its page atomically, and return the seconds it took to run."""
    nb, seconds = execute(ROOT / folder / f"{entry.stem}.ipynb", mode, timeout)
    page = render(nb, f"{entry.number} · {entry.stem} ({FOLDERS[folder]})", nav_bar(entry, folder, series),
                  mathjax_url)
    target = out / folder / f"{entry.stem}.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    print(f"{folder}/{entry.stem}: {seconds:.1f} s", flush=True)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    parser.add_argument("--mode", default=os.environ.get("COURSE_MODE", "fast"), choices=["fast", "cpu", "full"])
    parser.add_argument("--only", nargs="*", default=None, help="notebook numbers to render (default: all)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds a cell may take (default: 600 in fast mode, 3600 otherwise)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks executed at once, each kernel on its share of the CPUs (default: 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be 1 or more, got {args.jobs}")

    series = read_series((ROOT / "README.md").read_text())
    mathjax_url = install_mathjax(args.out)
    # Later notebooks train and sample more: start them first so no worker is left with a long one at the end.
    tasks = [(folder, entry) for entry in reversed(series) for folder in FOLDERS
             if entry.exists(folder) and (args.only is None or entry.number in args.only)]
    for folder in FOLDERS:
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    if args.jobs > 1:  # the kernels inherit this; two kernels with all the CPUs each would fight over them
        os.environ.setdefault("OMP_NUM_THREADS", str(kernel_threads(args.jobs)))
    common = (series, args.out, args.mode, args.timeout, mathjax_url)
    if args.jobs == 1:
        seconds = [build_page(folder, entry, *common) for folder, entry in tasks]
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            seconds = list(pool.map(build_page, *zip(*[(folder, entry, *common) for folder, entry in tasks])))
    timings = {(folder, entry.stem): s for (folder, entry), s in zip(tasks, seconds)}
    (args.out / "index.html").write_text(landing_page(series, timings, args.mode), encoding="utf-8")
    print(f"wrote {args.out / 'index.html'} ({len(timings)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
