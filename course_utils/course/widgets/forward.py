"""``ForwardExplorer``: a schedule and a timestep, and images noised by the closed form (notebook 02)."""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..._validation import as_int, check_images
from ...forward import q_sample
from ...schedules import SCHEDULE_NAMES, NoiseSchedule, get_schedule
from ...viz import show_images
from .base import Explorer


class ForwardExplorer(Explorer):
    """Pick a schedule and a timestep; see images noised by the closed form ``q_sample``.

    Args:
        images: ``{label: (B, C, H, W) images in [-1, 1]}``; each row of the display is one label.
        schedules: the schedules to choose from (the three named ones by default).
        seed: fixes the noise, so moving the slider changes only the noise level.
    """

    def __init__(self, images: Mapping[str, torch.Tensor], schedules: Mapping[str, NoiseSchedule] | None = None,
                 seed: int = 0):
        if not isinstance(images, Mapping):
            raise TypeError(f"images must be a dict mapping labels to (B, C, H, W) images in [-1, 1], got "
                            f"{type(images).__name__}.")
        if not images:
            raise ValueError("images must map at least one label to a (B, C, H, W) tensor.")
        self.images = {k: check_images(torch.as_tensor(v).float(), f"images[{k!r}]", what="(B, C, H, W) images")
                       for k, v in images.items()}
        self.schedules = dict(schedules) if schedules else {n: get_schedule(n) for n in SCHEDULE_NAMES}
        wrong = [k for k, s in self.schedules.items() if not isinstance(s, NoiseSchedule)]
        if wrong:
            raise TypeError(f"schedules must map names to NoiseSchedule objects (get_schedule(...)); {wrong} are not.")
        seed = as_int("seed", seed, minimum=0)
        sizes = {s.num_timesteps for s in self.schedules.values()}
        if len(sizes) != 1:
            raise ValueError(f"all schedules must have the same number of timesteps, got {sorted(sizes)}.")
        g = torch.Generator().manual_seed(seed)
        self.noise = {k: torch.randn(v.shape, generator=g) for k, v in self.images.items()}
        self.schedule_dropdown = widgets.Dropdown(options=list(self.schedules), description="schedule")
        self.t_slider = widgets.IntSlider(value=0, min=0, max=sizes.pop() - 1, step=1, description="timestep t",
                                          continuous_update=False, layout=widgets.Layout(width="420px"))
        self.info = widgets.HTML()
        self.out = widgets.Output()
        for w in (self.schedule_dropdown, self.t_slider):
            w.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.schedule_dropdown, self.t_slider]), self.info, self.out])
        self.update()

    def update(self, change=None) -> None:
        """Recompute the noised images for the current schedule and timestep, then redraw."""
        schedule = self.schedules[self.schedule_dropdown.value]
        t = int(self.t_slider.value)
        self.alpha_bar = float(schedule.alphas_cumprod[t])
        self.current = {k: q_sample(x, t, self.noise[k], schedule) for k, x in self.images.items()}
        snr = self.alpha_bar / (1 - self.alpha_bar)
        self.info.value = (f"ᾱ<sub>t</sub> = {self.alpha_bar:.4f} &nbsp; signal std √ᾱ = {self.alpha_bar ** 0.5:.3f}"
                           f" &nbsp; noise std √(1−ᾱ) = {(1 - self.alpha_bar) ** 0.5:.3f} &nbsp; SNR = {snr:.3g}")
        self._draw(t)

    def _draw(self, t: int) -> None:
        self.out.clear_output(wait=True)
        with self.out:
            n = len(self.current)
            fig, axes = plt.subplots(n, 1, figsize=(8, 1.4 * n), squeeze=False)
            for ax, (label, x) in zip(axes[:, 0], self.current.items()):
                show_images(x, nrow=len(x), ax=ax, title=f"{label} at t = {t}")
            fig.tight_layout()
            plt.show()
