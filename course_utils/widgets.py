"""Interactive explorers (ipywidgets 7.7+ and 8, so Colab and JupyterLab 4 both work).

Each explorer keeps its state in plain attributes (``.current``, ``.alpha_bar``) that its
widgets update, so what a slider drives can be checked without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import torch

from .forward import q_sample
from .schedules import SCHEDULE_NAMES, NoiseSchedule, get_schedule


class ForwardExplorer:
    """Pick a schedule and a timestep; see images noised by the closed form ``q_sample``.

    Args:
        images: ``{label: (B, C, H, W) images in [-1, 1]}``; each row of the display is one label.
        schedules: the schedules to choose from (the three named ones by default).
        seed: fixes the noise, so moving the slider changes only the noise level.
    """

    def __init__(self, images: Mapping[str, torch.Tensor], schedules: Mapping[str, NoiseSchedule] | None = None,
                 seed: int = 0):
        import ipywidgets as widgets

        if not images:
            raise ValueError("images must map at least one label to a (B, C, H, W) tensor.")
        self.images = {k: torch.as_tensor(v).float() for k, v in images.items()}
        for k, v in self.images.items():
            if v.ndim != 4:
                raise ValueError(f"images[{k!r}] must have shape (B, C, H, W), got {tuple(v.shape)}.")
        self.schedules = dict(schedules) if schedules else {n: get_schedule(n) for n in SCHEDULE_NAMES}
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
        from .viz import show_images

        self.out.clear_output(wait=True)
        with self.out:
            n = len(self.current)
            fig, axes = plt.subplots(n, 1, figsize=(8, 1.4 * n), squeeze=False)
            for ax, (label, x) in zip(axes[:, 0], self.current.items()):
                show_images(x, nrow=len(x), ax=ax, title=f"{label} at t = {t}")
            fig.tight_layout()
            plt.show()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class PromptExplorer:
    """Type a prompt, pick a guidance scale, press Generate: samples from a text-conditioned model,
    each titled with what the shapes judge reads in it.

    Args:
        model: a text-conditioned ``DiffusionModel`` (e.g. ``pretrained.load("shapes-text")``).
        judge: a ``ShapesJudge`` (default: the shipped one).
        n, steps, seed: samples per press, DDIM steps, and the seed (the same seed for every press,
            so changing only the scale shows what guidance does).
    """

    def __init__(self, model, judge=None, prompt: str = "a red circle on a blue background",
                 guidance_scale: float = 3.0, n: int = 6, steps: int = 25, seed: int = 0):
        import ipywidgets as widgets

        if model.info.get("conditioning") != "text":
            raise ValueError("PromptExplorer needs a text-conditioned model (info['conditioning'] == 'text').")
        if judge is None:
            from .metrics import shapes_judge

            judge = shapes_judge()
        self.model, self.judge, self.n, self.steps, self.seed = model, judge, n, steps, seed
        self.prompt = widgets.Text(value=prompt, description="prompt", layout=widgets.Layout(width="460px"))
        self.guidance = widgets.FloatSlider(value=guidance_scale, min=0.0, max=20.0, step=0.5,
                                            description="guidance w", continuous_update=False)
        self.button = widgets.Button(description="Generate", button_style="primary")
        self.status = widgets.HTML()
        self.out = widgets.Output()
        self.button.on_click(lambda _: self.generate())
        self.widget = widgets.VBox([widgets.HBox([self.prompt, self.button]), self.guidance, self.status, self.out])
        self.images, self.readings, self.adherence = None, [], None

    def generate(self) -> None:
        """Sample for the current prompt and scale; a prompt the model cannot read is reported, not raised."""
        from .data.shapes import parse_caption

        prompt = self.prompt.value
        try:
            self.model.text_encoder.tokenizer.encode([prompt])
        except (ValueError, TypeError) as exc:
            self.status.value = f"<span style='color:#a50e0e'>{exc}</span>"
            return
        g = torch.Generator().manual_seed(self.seed)
        self.images = self.model.sample(self.n, steps=self.steps, prompts=prompt,
                                        guidance_scale=float(self.guidance.value), generator=g)
        self.readings = self.judge.captions(self.images)
        try:
            parse_caption(prompt)
            self.adherence = sum(r == " ".join(prompt.lower().split()) for r in self.readings) / self.n
            verdict = f"the judge reads the prompt back in {self.adherence:.0%} of them"
        except ValueError:  # a valid word sequence the judge has no caption for: show, do not score
            self.adherence = None
            verdict = "not a full caption, so the judge does not score it"
        self.status.value = f"w = {self.guidance.value:g}: {self.n} samples, {verdict}."
        self._draw()

    def _draw(self) -> None:
        self.out.clear_output(wait=True)
        with self.out:
            fig, axes = plt.subplots(1, self.n, figsize=(1.9 * self.n, 2.3))
            for ax, img, reading in zip(axes, self.images, self.readings):
                ax.imshow(((img.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
                ax.set_title(reading.removeprefix("a ").replace(" background", "").replace(" on a ", "\non "),
                             fontsize=8)
                ax.axis("off")
            fig.suptitle(f"{self.prompt.value!r}, w = {self.guidance.value:g} (titles: what the shapes judge reads)",
                         fontsize=9)
            fig.tight_layout()
            plt.show()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
