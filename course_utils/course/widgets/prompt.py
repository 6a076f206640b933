"""``PromptExplorer``: a prompt and a guidance scale, samples, and what the shapes judge reads in them (notebook 05)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..._validation import as_float, as_int, check_positive_int
from ...data.shapes import parse_caption
from ...metrics import shapes_judge
from .base import Explorer


MAX_W = 20.0  # the guidance slider's top: past the over-saturation the course text describes at 15-20


class PromptExplorer(Explorer):
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
        if getattr(model, "info", {}).get("conditioning") != "text":
            raise ValueError("PromptExplorer needs a text-conditioned model (info['conditioning'] == 'text').")
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}.")
        guidance_scale = as_float("guidance_scale", guidance_scale, 0, MAX_W, note="the slider's range")
        n, steps, seed = check_positive_int("n", n), check_positive_int("steps", steps), as_int("seed", seed, minimum=0)
        if judge is None:
            judge = shapes_judge()
        self.model, self.judge, self.n, self.steps, self.seed = model, judge, n, steps, seed
        self.prompt = widgets.Text(value=prompt, description="prompt", layout=widgets.Layout(width="460px"))
        self.guidance = widgets.FloatSlider(value=guidance_scale, min=0.0, max=MAX_W, step=0.5,
                                            description="guidance w", continuous_update=False)
        self.button = widgets.Button(description="Generate", button_style="primary")
        self.status = widgets.HTML()
        self.out = widgets.Output()
        self.button.on_click(lambda _: self.generate())
        self.widget = widgets.VBox([widgets.HBox([self.prompt, self.button]), self.guidance, self.status, self.out])
        self.images, self.readings, self.adherence = None, [], None

    def generate(self) -> None:
        """Sample for the current prompt and scale; a prompt the model cannot read is reported, not raised."""
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
            fig, axes = plt.subplots(1, self.n, figsize=(1.9 * self.n, 2.3), squeeze=False)
            for ax, img, reading in zip(axes[0], self.images, self.readings):
                ax.imshow(((img.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
                ax.set_title(reading.removeprefix("a ").replace(" background", "").replace(" on a ", "\non "),
                             fontsize=8)
                ax.axis("off")
            fig.suptitle(f"{self.prompt.value!r}, w = {self.guidance.value:g} (titles: what the shapes judge reads)",
                         fontsize=9)
            fig.tight_layout()
            plt.show()
