"""The notebook stage (`make nbval`): kernels over Unix sockets, and a failed notebook's kernel log in
the report.

nbval starts each notebook's kernel with jupyter_client's defaults: TCP on 127.0.0.1, five ports
chosen by binding port 0 and letting go, and the kernel's stderr thrown away. With two notebooks
starting at once (`make test` runs two workers), a port handed out for one kernel can be taken by
the other worker's sockets before the kernel binds it; that kernel dies, and every cell of its
notebook errors at setup (one fresh-clone run: "400 passed, 16 errors", the 16 cells of notebook
04, the first notebook each worker takes). Unix sockets in a folder of each kernel's own cannot
collide, so that failure is gone rather than retried; the book build already runs its kernels so
(tools/build_book.py). And whatever a kernel prints to stderr now lands in a log that a failing
notebook's report shows, so the next failure explains itself.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

_WORK: list[Path] = []  # every kernel's folder, removed at the end


def _ipc_kernel_manager(base):
    class IPCKernelManager(base):
        """A kernel on Unix sockets in a fresh folder, its stderr kept in ``kernel.log`` there."""

        def __init__(self, **kwargs):
            self.work = Path(tempfile.mkdtemp(prefix="nbval-kernel-"))
            _WORK.append(self.work)
            super().__init__(transport="ipc", ip=str(self.work / "kernel"), **kwargs)

        def start_kernel(self, **kwargs):
            kwargs["stderr"] = open(self.work / "kernel.log", "w")  # nbval passes os.devnull
            return super().start_kernel(**kwargs)

    return IPCKernelManager


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("nbval"):
        return
    import nbval.kernel

    nbval.kernel.KernelManager = _ipc_kernel_manager(nbval.kernel.KernelManager)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.passed or item.fspath.ext != ".ipynb":
        return
    work = getattr(getattr(getattr(item.parent, "kernel", None), "km", None), "work", None)
    log = work / "kernel.log" if work is not None else None
    if log is not None and log.exists() and log.stat().st_size:
        report.sections.append(("kernel stderr (last 3,000 characters)", log.read_text(errors="replace")[-3000:]))


def pytest_unconfigure(config):
    for work in _WORK:
        shutil.rmtree(work, ignore_errors=True)
    _WORK.clear()
