"""``ForwardExplorer``: a schedule and a timestep, and images noised by the closed form (notebook 02).

The noising can be the learner's own: notebook 02's build, ``noise_batch(x0, t, schedule, generator)
-> (x_t, noise)``, passed as ``noise_batch=`` (the notebook passes what ``use_build`` chose).
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable, Mapping

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
        noise_batch: optional ``noise_batch(x0, t, schedule, generator) -> (x_t, noise)`` that noises
            ``(B, C, H, W)`` images ``x0`` to the ``(B,)`` timesteps ``t`` with noise from ``generator``
            (notebook 02's build). The explorer then noises with it, handing it a generator seeded with
            ``seed`` at every redraw; by default it uses the package's ``q_sample``.
    """

    def __init__(self, images: Mapping[str, torch.Tensor], schedules: Mapping[str, NoiseSchedule] | None = None,
                 seed: int = 0, noise_batch: Callable | None = None):
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
        self.seed = seed
        self.noise_batch = _check_noise_batch(noise_batch)
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
        if self.noise_batch is None:
            self.current = {k: q_sample(x, t, self.noise[k], schedule) for k, x in self.images.items()}
        else:
            self.current = self._noised_by_learner(schedule, t)
        snr = self.alpha_bar / (1 - self.alpha_bar)
        self.info.value = (f"ᾱ<sub>t</sub> = {self.alpha_bar:.4f} &nbsp; signal std √ᾱ = {self.alpha_bar ** 0.5:.3f}"
                           f" &nbsp; noise std √(1−ᾱ) = {(1 - self.alpha_bar) ** 0.5:.3f} &nbsp; SNR = {snr:.3g}")
        if self.noise_batch is not None:
            self.info.value += f" &nbsp; (noised by {html.escape(_name(self.noise_batch))})"
        self._draw(t)

    def _noised_by_learner(self, schedule: NoiseSchedule, t: int) -> dict[str, torch.Tensor]:
        """Each set of images noised to timestep ``t`` by ``noise_batch``, from one generator seeded with
        ``seed`` (so the noise is the same at every redraw), its answer checked."""
        g = torch.Generator().manual_seed(self.seed)
        current = {}
        for label, x in self.images.items():
            steps = torch.full((len(x),), t, dtype=torch.long)
            call = f"noise_batch(x0 of shape {tuple(x.shape)}, t = {t} for every image, schedule, generator)"
            try:
                out = self.noise_batch(x.clone(), steps, schedule, g)
            except Exception as err:
                raise RuntimeError(f"{call} raised {type(err).__name__}: {err}. {ACCEPTED}") from err
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise ValueError(f"{ACCEPTED} {call} returned {_describe(out)}.")
            x_t = out[0]
            if not isinstance(x_t, torch.Tensor) or tuple(x_t.shape) != tuple(x.shape):
                raise ValueError(f"{ACCEPTED} {call} returned x_t as {_describe(x_t)}, not of x0's shape "
                                 f"{tuple(x.shape)}.")
            if x_t.is_complex() or not torch.isfinite(x_t).all():
                raise ValueError(f"{ACCEPTED} {call} returned x_t with complex, NaN or inf values.")
            current[label] = x_t.detach().float().cpu()
        return current

    def _draw(self, t: int) -> None:
        self.out.clear_output(wait=True)
        with self.out:
            n = len(self.current)
            fig, axes = plt.subplots(n, 1, figsize=(8, 1.4 * n), squeeze=False)
            for ax, (label, x) in zip(axes[:, 0], self.current.items()):
                show_images(x, nrow=len(x), ax=ax, title=f"{label} at t = {t}")
            fig.tight_layout()
            plt.show()


ACCEPTED = ("noise_batch must be a function noise_batch(x0, t, schedule, generator) -> (x_t, noise), as notebook "
            "02's build (or nb02.noise_batch): x0 (B, C, H, W) images, t a (B,) LongTensor of timesteps, schedule "
            "a NoiseSchedule, generator a torch.Generator; it returns the noised images and the noise, both of "
            "x0's shape.")


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _describe(value) -> str:
    """What came, in words: "a tensor of shape (2, 3)", "a tuple of 3", "the class Tensor", "int 5", "None"."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, type):
        return f"the class {value.__name__} (a function is needed, not a class)"
    return "None" if value is None else f"{type(value).__name__} {value!r:.60}"


def _check_noise_batch(fn):
    """``fn`` when it can be called as ``fn(x0, t, schedule, generator)``; ``None`` stays ``None``."""
    if fn is None:
        return None
    if isinstance(fn, type) or not callable(fn):
        raise TypeError(f"{ACCEPTED} Got {_describe(fn)}.")
    if fn is q_sample:
        raise TypeError(f"{ACCEPTED} Got the package's q_sample(x0, t, noise, schedule), which takes the noise "
                        "instead of drawing it; leave noise_batch out to noise with q_sample.")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins): the first call will tell
        return fn
    try:
        signature.bind(None, None, None, None)
    except TypeError:
        raise TypeError(f"{ACCEPTED} Got {_name(fn)}{signature}, which cannot take those four arguments.") from None
    return fn
