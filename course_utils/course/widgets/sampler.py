"""``SamplerExplorer``: a sampler and a step count, the same seed's digits, their time and network calls (notebook 09)."""

from __future__ import annotations

import time
import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ... import pretrained
from ..._validation import as_int, check_positive_int
from ...config import get_device
from ...viz import show_images
from ..speed import ROWS, spec
from .base import Explorer


class SamplerExplorer(Explorer):
    """Pick a sampler and a step count, press Draw: the same seed's digits, how long they took and
    how many network calls they needed (notebook 09).

    Args:
        rows: sampler rows of notebook 09's table (``speed.ROWS``) for the dropdown; by default all but
            DDPM (whose 1,000 steps make a slider pointless). ``families`` is its old name (until 0.3).
        steps: the slider's starting value.
        n, seed: digits per press and the seed (the same for every press, so only the sampler changes).
        max_steps: the slider's upper end (the student takes at most 50: its distillation grid).
    """

    def __init__(self, rows=("DDIM", "DPM-Solver++", "Euler-Karras", "Heun-Karras", "flow Euler", "flow Heun",
                             "student"), n: int = 16,
                 seed: int = 0, steps: int = 4, max_steps: int = 50, device="cpu", families=None):
        if families is not None:
            warnings.warn("SamplerExplorer(families=...) is now SamplerExplorer(rows=...); the old name is removed in "
                          "course_utils 0.3.", DeprecationWarning, stacklevel=2)
            rows = families
        if isinstance(rows, str) or not all(isinstance(r, str) for r in rows):
            raise TypeError(f"rows must be a list of row names ({sorted(ROWS)}), got {rows!r}.")
        unknown = [r for r in rows if r not in ROWS]
        if unknown or not rows:
            raise ValueError(f"rows must be some of {sorted(ROWS)}, got {list(rows)}.")
        n, seed = check_positive_int("n", n), as_int("seed", seed, minimum=0)
        max_steps = check_positive_int("max_steps", max_steps)
        steps = as_int("steps", steps, minimum=1, maximum=max_steps, what="a step count on the slider")
        device = get_device(device)
        self.rows, self.n, self.seed, self.device = list(rows), n, seed, device
        self.row = widgets.Dropdown(options=self.rows, value=self.rows[0], description="sampler")
        self.steps = widgets.IntSlider(value=steps, min=1, max=max_steps, description="steps",
                                       continuous_update=False)
        self.button = widgets.Button(description="Draw", button_style="primary")
        self.status = widgets.HTML()
        self.out = widgets.Output()
        self.button.on_click(lambda _: self.draw())
        self.widget = widgets.VBox([widgets.HBox([self.row, self.steps, self.button]), self.status, self.out])
        self.images, self.seconds, self.nfe = None, None, None

    def draw(self) -> None:
        """Sample with the current choice; a step count the sampler refuses is reported, not raised."""
        s = spec(self.row.value, int(self.steps.value))
        model = pretrained.load(s.model, device=self.device)
        start = time.perf_counter()
        try:
            self.images = model.sample(self.n, steps=s.steps, sampler=s.sampler,
                                       generator=torch.Generator().manual_seed(self.seed),
                                       sampler_options=dict(s.options) or None)
        except ValueError as exc:
            self.status.value = f"<span style='color:#a50e0e'>{exc}</span>"
            return
        self.seconds, self.nfe = time.perf_counter() - start, s.nfe
        self.status.value = (f"{s.label}: {self.n} digits in {self.seconds:.2f} s "
                             f"({self.nfe} network calls per image).")
        self._draw(s.label)

    def _draw(self, label: str) -> None:
        self.out.clear_output(wait=True)
        with self.out:
            show_images(self.images, nrow=8, title=f"{label}, seed {self.seed}")
            plt.show()
