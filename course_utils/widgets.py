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


class LatentExplorer:
    """Step through images and their VAE latents one channel at a time (the course text's
    Exercise 4): the image, its reconstruction, every latent channel, and how the chosen channel
    correlates with the image's brightness and colour channels (each pooled to the latent grid).

    Args:
        vae: an autoencoder from ``course_utils.models.vae`` (e.g. ``pretrained.load("shapes-vae")``).
        images: ``(N, 3, H, W)`` images in [-1, 1].
    """

    def __init__(self, vae, images: torch.Tensor):
        import ipywidgets as widgets

        from .latent import decode, encode

        images = torch.as_tensor(images).float()
        if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
            raise ValueError(f"images must be a non-empty (N, 3, H, W) RGB batch, got {tuple(images.shape)}.")
        self.images = images
        self.latents = encode(vae, images, scaled=False)  # (N, C, h, w), posterior means
        self.reconstructions = decode(vae, self.latents, scaled=False)  # (N, 3, H, W)
        self.index = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                                       continuous_update=False)
        self.channel = widgets.Dropdown(options=list(range(self.latents.shape[1])), value=0, description="channel")
        self.info = widgets.HTML()
        self.out = widgets.Output()
        for w in (self.index, self.channel):
            w.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.index, self.channel]), self.info, self.out])
        self.update()

    def update(self, change=None) -> None:
        """Recompute the chosen channel's map and its correlations, then redraw."""
        from .latent import latent_channel_correlations

        i, c = int(self.index.value), int(self.channel.value)
        self.current = self.latents[i, c]  # (h, w)
        self.stats = {k: float(v[c]) for k, v in latent_channel_correlations(self.latents[i:i + 1],
                                                                             self.images[i:i + 1]).items()}
        self.info.value = f"channel {c} of image {i}, correlation with: " + ", ".join(
            f"{k} {v:+.2f}" for k, v in self.stats.items())
        self._draw(i, c)

    def _draw(self, i: int, c: int) -> None:
        self.out.clear_output(wait=True)
        with self.out:
            k = self.latents.shape[1]
            fig, axes = plt.subplots(1, 2 + k, figsize=(2.1 * (2 + k), 2.5))
            for ax, img, title in ((axes[0], self.images[i], "image"), (axes[1], self.reconstructions[i], "decoded")):
                ax.imshow(((img.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
                ax.set_title(title, fontsize=9)
            lim = float(self.latents[i].abs().max())
            for j in range(k):
                axes[2 + j].imshow(self.latents[i, j].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
                axes[2 + j].set_title(f"channel {j}" + (" (chosen)" if j == c else ""), fontsize=9,
                                      fontweight="bold" if j == c else "normal")
            for ax in axes:
                ax.axis("off")
            fig.suptitle(f"image {i}: its latent's {k} channels, {tuple(self.latents.shape[2:])} each "
                         "(red > 0 > blue, one colour scale)", fontsize=9)
            fig.tight_layout()
            plt.show()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class PatchExplorer:
    """Pick a patch size; see an image cut into the patch tokens a DiT reads, and what it costs.

    For a square ``H x H`` image and patch size ``p`` (a divisor of ``H``): ``N = (H / p)**2``
    tokens of ``p * p * C`` numbers each, and self-attention compares ``N**2`` pairs of them.

    Args:
        image: one ``(C, H, H)`` (or ``(1, C, H, H)``) image in [-1, 1], C = 1 or 3.
        patch_size: the starting patch size.
    """

    def __init__(self, image: torch.Tensor, patch_size: int = 2):
        import ipywidgets as widgets

        image = torch.as_tensor(image).float()
        image = image[0] if image.ndim == 4 and len(image) == 1 else image
        if image.ndim != 3 or image.shape[0] not in (1, 3) or image.shape[1] != image.shape[2]:
            raise ValueError(f"image must be one square (C, H, H) image with C = 1 or 3, got {tuple(image.shape)}.")
        self.image = image
        self.side = image.shape[1]
        self.sizes = [p for p in range(1, self.side + 1) if self.side % p == 0]
        if patch_size not in self.sizes:
            raise ValueError(f"patch_size must divide the image side {self.side}; accepted: {self.sizes}.")
        self.slider = widgets.SelectionSlider(options=self.sizes, value=patch_size, description="patch size p",
                                              continuous_update=False, layout=widgets.Layout(width="420px"))
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.slider.observe(self.update, names="value")
        self.widget = widgets.VBox([self.slider, self.info, self.out])
        self.update()

    def update(self, change=None) -> None:
        """Cut the image into patches of the chosen size, recount the cost, then redraw."""
        from .models.dit import patchify, sequence_length

        p = int(self.slider.value)
        self.patch_size = p
        self.tokens = patchify(self.image[None], p)[0]  # (N, p*p*C)
        self.num_tokens = sequence_length(self.side, p)
        self.token_dim = self.tokens.shape[1]
        self.attention_pairs = self.num_tokens ** 2
        rows = "".join(
            f"<tr style='font-weight:{'bold' if q == p else 'normal'}'><td>{q}</td>"
            f"<td>{sequence_length(self.side, q):,}</td><td>{q * q * self.image.shape[0]}</td>"
            f"<td>{sequence_length(self.side, q) ** 2:,}</td></tr>" for q in self.sizes)
        self.info.value = (f"p = {p}: N = ({self.side}/{p})² = <b>{self.num_tokens:,} tokens</b> of {p}×{p}×"
                           f"{self.image.shape[0]} = {self.token_dim} number{'s' if self.token_dim > 1 else ''}; self-attention compares "
                           f"N² = <b>{self.attention_pairs:,}</b> pairs per head and layer."
                           "<table><tr><th>p</th><th>tokens N</th><th>numbers per token</th><th>pairs N²</th></tr>"
                           f"{rows}</table>")
        self._draw()

    def _draw(self) -> None:
        from .viz import to_display

        p, n, side = self.patch_size, self.num_tokens, self.side
        self.out.clear_output(wait=True)
        with self.out:
            fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.3]})
            img = to_display(self.image)[0]
            left.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                        extent=(0, side, side, 0), interpolation="nearest")
            for k in range(0, side + 1, p):
                left.axhline(k, color="tab:orange", lw=1.2)
                left.axvline(k, color="tab:orange", lw=1.2)
            if n <= 64:  # number the patches in reading order, the order of the tokens
                for i in range(side // p):
                    for j in range(side // p):
                        left.text(j * p + p / 2, i * p + p / 2, str(i * (side // p) + j), color="tab:orange",
                                  ha="center", va="center", fontsize=max(6, 14 - n // 8))
            left.set(xlabel="pixel column", ylabel="pixel row", title=f"{side}x{side} image, {p}x{p} patches")
            seq = ((self.tokens.clamp(-1, 1) + 1) / 2).numpy()  # (N, p*p*C) in [0, 1]
            right.imshow(seq, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            right.set_xticks(range(0, self.token_dim, max(1, self.token_dim // 8)))
            right.set_yticks(range(0, n, max(1, n // 8)))
            right.set(xlabel=f"number within the token (p·p·C = {self.token_dim})", ylabel="token index",
                      title=f"the sequence: {n} token{'s' if n > 1 else ''} x {self.token_dim} "
                      f"number{'s' if self.token_dim > 1 else ''}")
            fig.suptitle(f"p = {p}: {n} tokens, attention over {self.attention_pairs:,} pairs")
            fig.tight_layout()
            plt.show()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class SamplerExplorer:
    """Pick a sampler and a step count, press Draw: the same seed's digits, how long they took and
    how many network calls they needed (notebook 09).

    Args:
        families: names from ``speed.FAMILIES`` for the dropdown; by default all but DDPM (whose
            1,000 steps make a slider pointless).
        steps: the slider's starting value.
        n, seed: digits per press and the seed (the same for every press, so only the sampler changes).
        max_steps: the slider's upper end (the student takes at most 50: its distillation grid).
    """

    def __init__(self, families=("DDIM", "DPM-Solver++", "flow Euler", "flow Heun", "student"), n: int = 16,
                 seed: int = 0, steps: int = 4, max_steps: int = 50, device="cpu"):
        import ipywidgets as widgets

        from .speed import FAMILIES

        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ValueError(f"families must be some of {sorted(FAMILIES)}, got {list(families)}.")
        self.families, self.n, self.seed, self.device = list(families), n, seed, device
        self.family = widgets.Dropdown(options=self.families, value=self.families[0], description="sampler")
        self.steps = widgets.IntSlider(value=steps, min=1, max=max_steps, description="steps",
                                       continuous_update=False)
        self.button = widgets.Button(description="Draw", button_style="primary")
        self.status = widgets.HTML()
        self.out = widgets.Output()
        self.button.on_click(lambda _: self.draw())
        self.widget = widgets.VBox([widgets.HBox([self.family, self.steps, self.button]), self.status, self.out])
        self.images, self.seconds, self.nfe = None, None, None

    def draw(self) -> None:
        """Sample with the current choice; a step count the sampler refuses is reported, not raised."""
        import time

        from . import pretrained
        from .speed import spec

        s = spec(self.family.value, int(self.steps.value))
        model = pretrained.load(s.model, device=self.device)
        start = time.perf_counter()
        try:
            self.images = model.sample(self.n, steps=s.steps, sampler=s.sampler,
                                       generator=torch.Generator().manual_seed(self.seed))
        except ValueError as exc:
            self.status.value = f"<span style='color:#a50e0e'>{exc}</span>"
            return
        self.seconds, self.nfe = time.perf_counter() - start, s.nfe
        self.status.value = (f"{s.label}: {self.n} digits in {self.seconds:.2f} s "
                             f"({self.nfe} network calls per image).")
        self._draw(s.label)

    def _draw(self, label: str) -> None:
        from .viz import show_images

        self.out.clear_output(wait=True)
        with self.out:
            show_images(self.images, nrow=8, title=f"{label}, seed {self.seed}")
            plt.show()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
