"""A trained denoiser with its schedule: the object ``pretrained.load`` returns, and ``sample``.

The denoiser is a ``UNet`` or a ``DiT`` (the same call and config fields). With a ``vae`` the model
is a latent diffusion model: it samples latents of the VAE's scaled latent shape and decodes them.

How a sample is made (``DiffusionModel.sample``): the condition (labels or prompts) and the guidance
scale pick the network to call (``guidance.ClassifierFreeGuidance`` when guiding); ``denoisers``
binds the condition to it and clamps the ``x0`` it implies; the sampler named in
``samplers.registry`` and the one loop ``samplers.sample_loop`` walk from noise to a sample; a
latent model then decodes it with its VAE (``latent.decode``).
"""

from __future__ import annotations

import torch

from ._validation import (as_float, check_bool, check_choice, check_generator, check_labels, check_positive_int,
                          check_size)
from .denoisers import ClampX0, WithCondition
from .families import CONSISTENCY, FLOW_MATCHING, FLOW_PREDICTION, family_of
from .guidance import ClassifierFreeGuidance, check_guidance, check_guidance_scale, make_guidance
from .latent import decode
from .models.dit import DiT, DiTConfig
from .models.unet import UNet, UNetConfig
from .parameterization import WELL_CONDITIONED_ALPHA_BAR
from .samplers import get_entry, sample_loop, samplers_for
from .schedules import NoiseSchedule


TRAILING_BELOW = 10  # fewer DDIM / DDPM steps than this count down from the noisy end (_sampler)
# From the cosine schedule's last timestep (sigma 20,291) these multiply the model's error by about sigma unless
# x0 is clamped, Heun even then (digits-class Heun-20, w = 3: 8.5% right; unclamped shapes-latent DPM-Solver++: 20%);
# _sampler gives them diffusers' "leading" spacing there (Stable Diffusion's; 100% each) unless the caller chose one.
STARTS_AT_THE_TOP, SPACING_KEYS = ("euler", "heun", "dpmsolver++"), ("timestep_spacing", "use_karras_sigmas")


class DiffusionModel:
    """A denoiser (U-Net or DiT), the schedule it was trained with (none for flow matching), and
    what it predicts.

    Args:
        denoiser: the network, a ``UNet`` or a ``DiT`` (put in eval mode); ``.unet`` is an alias.
        schedule: its training ``NoiseSchedule``; None for a flow-matching model.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``; ``"flow"`` for a
            flow-matching model (it predicts the velocity ``eps - x0``, ``course_utils.flow_matching``).
        info: the manifest entry (for ``repr`` and cards).
        text_encoder: the TinyCLIP of a text-conditioned model.
        vae: for a latent diffusion model, the autoencoder whose scaled latents ``denoiser`` denoises.
        sampler_config: for a consistency student (``info["method"] == "consistency"``), the
            ``ConsistencySampler`` arguments it was distilled with.
    """

    def __init__(self, denoiser: UNet | DiT, schedule: NoiseSchedule | None, prediction_type: str = "epsilon",
                 info: dict | None = None, text_encoder=None, vae=None, sampler_config: dict | None = None):
        if (prediction_type == FLOW_PREDICTION) != (schedule is None):
            raise ValueError("a flow-matching model (prediction_type='flow') takes schedule=None; a diffusion model "
                             f"needs its noise schedule (got prediction_type={prediction_type!r}, schedule={schedule}).")
        self.denoiser = denoiser.eval()
        self.vae = vae.eval() if vae is not None else None
        if vae is not None and (self.config.in_channels, self.config.sample_size) != vae.latent_shape[:2]:
            raise ValueError(f"the denoiser takes {self.config.in_channels} channels at "
                             f"{self.config.sample_size}x{self.config.sample_size}, but the VAE's latents "
                             f"are {vae.latent_shape}.")
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.info = info or {}
        self.sampler_config = dict(sampler_config or {})
        if self.info.get("method") == CONSISTENCY and (schedule is None or prediction_type != "epsilon"):
            raise ValueError("a consistency student predicts the noise under its teacher's schedule.")
        self.text_encoder = text_encoder  # a TinyCLIP (its token_states) for a text-conditioned model
        if self.info.get("conditioning") == "text" and text_encoder is None:
            raise ValueError("a text-conditioned model needs its text_encoder (the TinyCLIP it was trained with).")

    @property
    def unet(self) -> UNet | DiT:
        """The denoiser under its first name (kept: notebooks and teachers' code use it)."""
        return self.denoiser

    @unet.setter
    def unet(self, net: UNet | DiT) -> None:
        self.denoiser = net

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def family(self) -> str:
        """``"diffusion"``, ``"flow_matching"`` or ``"consistency"`` (``course_utils.families``)."""
        return family_of(self.prediction_type, self.info.get("method"))

    @property
    def is_flow(self) -> bool:
        """True for a flow-matching model (samplers ``"euler"`` and ``"heun"``)."""
        return self.family == FLOW_MATCHING

    @property
    def is_consistency(self) -> bool:
        """True for a consistency-distilled student (sampler ``"consistency"``, 1-4 steps)."""
        return self.family == CONSISTENCY

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers this model takes (``samplers.registry``); the first is its default."""
        return samplers_for(self.family)

    @property
    def default_sampler(self) -> str:
        return self.samplers[0]

    @property
    def config(self) -> UNetConfig | DiTConfig:
        return self.denoiser.config

    def __repr__(self) -> str:
        name = self.info.get("name", "unnamed")
        return (f"DiffusionModel({name!r}, {self.denoiser.num_parameters() / 1e6:.2f}M parameters, "
                f"schedule={self.schedule.name if self.schedule else 'flow matching'}, "
                f"prediction_type={self.prediction_type!r})")

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, generator: torch.Generator | None = None, labels=None,
               prompts=None, guidance_scale: float | None = None, sampler: str | None = None, eta: float | None = None,
               batch_size: int = 256, clip_sample: bool | None = None, output: str = "images", guidance: str = "cfg",
               guidance_options: dict | None = None, sampler_options: dict | None = None) -> torch.Tensor:
        """Draw ``n`` images: ``(n, C, H, W)`` in [-1, 1] (a latent model decodes its latents).

        Args:
            steps: sampler steps (default: the sampler's, ``samplers.SAMPLERS[name].default_steps``:
                50 for DDIM and Euler, 20 for DPM-Solver++, 25 for Heun, 2 for a consistency
                student, all T for DDPM).
            generator: a CPU ``torch.Generator`` fixes every random draw.
            labels, prompts: the condition (class-conditional models: an int or n ints; text models:
                one prompt or n prompts). None: the unconditional model (null label / empty prompt).
            guidance_scale: classifier-free guidance ``w`` in [0, 50]; None: the model's default
                (``info["default_guidance_scale"]``) when a condition is given.
            sampler: ``"ddim"`` (the default; deterministic with ``eta = 0``), ``"ddpm"``,
                ``"dpmsolver++"`` (DPM-Solver++ 2M, deterministic; good at 10-20 steps), ``"euler"`` or
                ``"heun"`` (the probability-flow ODE in sigma, as diffusers' ``EulerDiscreteScheduler`` and
                ``HeunDiscreteScheduler``). With fewer
                than 10 steps, DDIM and DDPM start at the noisy end ("trailing" spacing), so that
                one step already gives a blurry digit, not noise (diffusers' "leading" spacing
                visits only t = 0); ``_sampler`` says where they start. A flow-matching
                model takes ``"euler"`` (its default) or ``"heun"`` (on its ODE); a consistency student ``"consistency"``
                (1-4 steps; ``model.samplers`` lists what a model takes).
            eta: DDIM's noise (0: deterministic, 1: DDPM-like). None: with DDIM the model's ``info["default_eta"]``
                (1 for the text models: deterministic steps keep their error as background grain), else 0.
            clip_sample: clamp the ``x0`` each step predicts to [-1, 1] and re-derive the noise
                estimate from it (``parameterization.clamp_x0_prediction``), so that both stay consistent.
                diffusers' DDIM clamp keeps the model's noise estimate instead, which drifts off the
                condition under guidance (digits-class, w = 3, DDIM-50: 40% of 500 digits right against
                100%); without any clamp shapes-text's samples saturate as the step count grows.
                None: on for pixel models, off for latent models (latents are not bounded).
            output: ``"images"``, or ``"latents"`` for a latent model's scaled latents, undecoded.
            guidance, guidance_options: ``"cfg"`` (classifier-free guidance) or ``"apg"`` (adaptive projected
                guidance, which keeps large ``w`` from saturating), and their keyword arguments, such as
                ``{"interval": (t_lo, t_hi)}`` (``guidance.make_guidance``).
            sampler_options: constructor settings the sampler's registry entry allows (``SAMPLERS[name].options``):
                Euler's and Heun's ``use_karras_sigmas``, ``sigma_min``, ``sigma_max``, ``timestep_spacing`` on a
                diffusion model (EDM's: ``{"use_karras_sigmas": True, "sigma_max": 80.0}``), ``shift`` on a
                flow-matching one; other names are refused.
        """
        n, batch_size, entry, options = self._check_sample_args(n, batch_size, sampler, eta, output, generator)
        clip = self.vae is None if clip_sample is None else check_bool("clip_sample", clip_sample)
        net, condition = self._conditioned(n, labels, prompts, guidance_scale, guidance, guidance_options)
        steps = check_positive_int("steps", steps if steps is not None else entry.default_steps or len(self.schedule))
        s = self._sampler(entry, steps, clip, sampler_options)
        out = []
        for lo in range(0, n, batch_size):
            m = min(batch_size, n - lo)
            if isinstance(net, ClassifierFreeGuidance):
                net.reset()  # each batch is a new run (APG's momentum)
            denoiser = WithCondition(net, self.device, **{k: v[lo:lo + m] for k, v in condition.items()})
            if clip and not entry.clamps_itself:
                denoiser = ClampX0(denoiser, self.schedule, self.prediction_type)
            shape = (m, self.config.in_channels, self.config.sample_size, self.config.sample_size)
            x = sample_loop(denoiser, s, shape, steps, generator=generator, device=self.device, **options)
            out.append(x.cpu() if self.vae is not None else x.clamp(-1, 1).cpu())
        x = torch.cat(out)
        return x if self.vae is None or output == "latents" else decode(self.vae, x, batch_size=batch_size)

    def _check_sample_args(self, n, batch_size, sampler, eta, output, generator):
        """``n`` and ``batch_size`` as ints, the sampler's registry entry, and the step options it takes;
        an option it would ignore (``eta`` with a sampler other than DDIM) is refused, not dropped."""
        n, batch_size = check_positive_int("n", n), check_positive_int("batch_size", batch_size)
        entry = get_entry(check_choice("sampler", self.default_sampler if sampler is None else sampler, self.samplers))
        check_choice("output", output, ("images", "latents") if self.vae is not None else ("images",))
        check_generator(generator)
        if eta is None:
            eta = self.info.get("default_eta", 0.0) if "eta" in entry.step_options else 0.0
        eta = as_float("eta", eta, 0, 1, note="DDIM's noise: 0 deterministic, 1 DDPM-like")
        if eta and "eta" not in entry.step_options:
            raise ValueError(f"eta={eta:g} is used only by sampler='ddim'; sampler={entry.name!r} would ignore it "
                             "(leave eta at 0, or sample with DDIM).")
        check_size(f"{n:,} samples", 2 * 4 * n * self.config.in_channels * self.config.sample_size**2, "n")
        return n, batch_size, entry, ({"eta": eta} if "eta" in entry.step_options else {})

    def make_sampler(self, sampler: str | None = None, steps: int | None = None, clip_sample: bool = True,
                     sampler_options: dict | None = None):
        """The fresh sampler ``sample(..., sampler=, steps=, clip_sample=, sampler_options=)`` would step with
        (diffusers' interface), for running ``sample_loop`` on a denoiser of your own, such as a guided step."""
        entry = get_entry(check_choice("sampler", self.default_sampler if sampler is None else sampler, self.samplers))
        steps = check_positive_int("steps", steps if steps is not None else entry.default_steps or len(self.schedule))
        return self._sampler(entry, steps, check_bool("clip_sample", clip_sample), sampler_options)

    def _sampler(self, entry, steps: int, clip: bool, sampler_options: dict | None = None):
        """A fresh sampler. diffusers' "leading" spacing starts DDIM and DDPM at (k - 1) * (T // k): at
        t = 0 for one step (the noise comes back), within 10% of T - 1 from ten steps on. With fewer
        than TRAILING_BELOW steps they count down instead (``entry.model_options``: "trailing"), from
        the noisiest timestep whose x0 a noise prediction still determines well (alpha_bar >=
        WELL_CONDITIONED_ALPHA_BAR; the cosine schedule's last ones would multiply the model's error
        by up to 20,000): one step is a blurry digit. ``STARTS_AT_THE_TOP``: Euler, Heun, DPM-Solver++."""
        options = dict(self.sampler_config) | entry.check_options(self.family, sampler_options)
        if (entry.name in STARTS_AT_THE_TOP and self.schedule is not None and (not clip or entry.name == "heun")
                and not {*SPACING_KEYS} & {*options} and self.schedule.alphas_cumprod[-1] < WELL_CONDITIONED_ALPHA_BAR):
            options["timestep_spacing"] = "leading"
        if entry.model_options and steps < TRAILING_BELOW:
            top = int((self.schedule.alphas_cumprod >= WELL_CONDITIONED_ALPHA_BAR).nonzero().max())
            options |= entry.model_options | {"max_timestep": top}
        return entry.build(self.schedule, self.prediction_type, clip and entry.clamps_itself, **options)

    def _conditioned(self, n: int, labels, prompts, guidance_scale, guidance="cfg",
                     options=None) -> tuple[torch.nn.Module, dict]:
        """The network to call (the denoiser, or guidance around it) and the condition tensors, ``(n, ...)``
        each, for ``n`` samples; every combination the model cannot take is refused here."""
        cond = self.info.get("conditioning")
        if cond is None and (labels is not None or prompts is not None or guidance_scale is not None):
            raise ValueError(f"{self.info.get('name', 'this model')} is unconditional: it takes no labels, prompts "
                             "or guidance_scale.")
        if prompts is not None and cond != "text":
            raise ValueError("prompts need a text-conditioned model (info(name)['conditioning'] == 'text').")
        if labels is not None and cond != "class":
            raise ValueError("labels need a class-conditioned model (info(name)['conditioning'] == 'class').")
        condition = {"class_labels": check_labels(labels, n, self.config.num_classes)} if labels is not None else {}
        if guidance_scale is None and (labels is not None or prompts is not None):
            guidance_scale = self.info.get("default_guidance_scale")  # None: the plain conditional model
        if guidance_scale is not None:
            guidance_scale = check_guidance_scale(guidance_scale)
            if labels is None and prompts is None:
                raise ValueError("guidance_scale needs a condition to guide towards: pass labels (or prompts).")
        w = 1.0 if guidance_scale is None else guidance_scale
        guidance, options = check_guidance(guidance, options)
        if (guidance != "cfg" or options) and labels is None and prompts is None:
            raise ValueError(f"guidance={guidance!r}{f' with guidance_options={options}' if options else ''} needs a "
                             "condition to guide towards: pass labels (or prompts).")
        null = {}
        if cond == "text":
            states, masks, null["null_context"], null["null_mask"] = self._text(prompts, n)
            condition |= {"encoder_hidden_states": states, "encoder_attention_mask": masks}
        net = make_guidance(guidance, self.denoiser, w, self.schedule, self.prediction_type, options, **null)
        return (self.denoiser if w == 1.0 else net), condition

    @torch.no_grad()
    def attention_maps(self, prompts, steps: int = 25, guidance_scale: float | None = None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[int, torch.Tensor], list]:
        """Sample ``prompts`` and record where each image position looked in the text, per resolution.

        Returns ``(images (B, C, H, W), maps, tokens)``: ``maps[r]`` is ``(B, L, r, r)``, the
        cross-attention weights of the conditional pass averaged over heads, over every
        cross-attention layer at resolution ``r`` and over all sampling steps; ``tokens[b]`` names
        the ``L`` tokens of prompt ``b`` (``<bos>``, words, ``<eos>``, padding).
        """
        if self.info.get("conditioning") != "text":
            raise ValueError("attention maps need a text-conditioned model (info(name)['conditioning'] == 'text').")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        sums: dict[int, torch.Tensor] = {}
        layers = [m for m in self.denoiser.modules() if type(m).__name__ == "CrossAttention2d"]
        b = len(prompts)

        def collect(module, inputs, output):
            att = module.last_attention[:b]  # conditional half only: (B, heads, HW, L)
            side = int(round(att.shape[2] ** 0.5))
            m = att.mean(1).transpose(1, 2).reshape(b, att.shape[-1], side, side)  # (B, L, r, r)
            sums[side] = sums.get(side, 0) + m.float().cpu()

        hooks = [m.register_forward_hook(collect) for m in layers]
        self.denoiser.store_attention(True)
        try:
            images = self.sample(b, steps=steps, prompts=prompts, guidance_scale=guidance_scale, generator=generator)
        finally:
            self.denoiser.store_attention(False)
            for h in hooks:
                h.remove()
        ids, _ = self.text_encoder.tokenizer.encode(prompts)
        tokens = [[self.text_encoder.tokenizer.vocab[i] for i in row.tolist()] for row in ids]
        # Each position's weights sum to 1 over the L tokens, so renormalising the sums is the average.
        maps = {r: v / v.sum(1, keepdim=True).clamp_min(1e-12) for r, v in sums.items()}
        return images, maps, tokens

    @torch.no_grad()
    def _text(self, prompts, n: int):
        """Token states and masks of the prompts (the empty prompt when there are none), and of ""."""
        prompts = [""] * n if prompts is None else [prompts] * n if isinstance(prompts, str) else list(prompts)
        if len(prompts) != n:
            raise ValueError(f"give one prompt or n = {n} prompts, got {len(prompts)}.")
        states, masks = self.text_encoder.token_states(prompts)  # (n, L, D), (n, L)
        null_states, null_masks = self.text_encoder.token_states([""])  # (1, L, D), (1, L)
        dev = self.device
        return states.to(dev), masks.to(dev), null_states.to(dev), null_masks.to(dev)

