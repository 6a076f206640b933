"""A trained denoiser with its schedule: the object ``pretrained.load`` returns, and ``sample``.

The denoiser is a ``UNet`` or a ``DiT`` (the same call and config fields). With a ``vae`` the model
is a latent diffusion model: it samples latents of the VAE's scaled latent shape and decodes them.
"""

from __future__ import annotations

import torch

from ._validation import check_choice, check_positive_int
from .flow_matching import NUM_TRAIN_TIMESTEPS
from .guidance import ClassifierFreeGuidance, check_guidance_scale
from .models import denoiser_from_dict
from .models.dit import DiT, DiTConfig
from .models.unet import UNet, UNetConfig
from .parameterization import clamp_x0_prediction, flow_clamp_x0
from .samplers import (ConsistencySampler, DDIMSampler, DDPMSampler, DPMSolverSampler, FlowMatchEulerSampler,
                       FlowMatchHeunSampler)
from .schedules import NoiseSchedule, get_schedule

SAMPLERS = ("ddim", "ddpm", "dpmsolver++")  # for diffusion models (a noise schedule)
FLOW_SAMPLERS = ("euler", "heun")  # for flow-matching models (prediction_type "flow")
CONSISTENCY_SAMPLERS = ("consistency",)  # for a consistency-distilled student
DEFAULT_STEPS = {"ddim": 50, "dpmsolver++": 20, "euler": 50, "heun": 25, "consistency": 2}  # DDPM: all T


class DiffusionModel:
    """A denoiser (U-Net or DiT), the schedule it was trained with (none for flow matching), and
    what it predicts.

    Args:
        unet: the denoiser, a ``UNet`` or a ``DiT`` (in eval mode).
        schedule: its training ``NoiseSchedule``; None for a flow-matching model.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``; ``"flow"`` for a
            flow-matching model (it predicts the velocity ``eps - x0``, ``course_utils.flow_matching``).
        info: the manifest entry (for ``repr`` and cards).
        text_encoder: the TinyCLIP of a text-conditioned model.
        vae: for a latent diffusion model, the autoencoder whose scaled latents ``unet`` denoises.
        sampler_config: for a consistency student (``info["method"] == "consistency"``), the
            ``ConsistencySampler`` arguments it was distilled with.
    """

    def __init__(self, unet: UNet | DiT, schedule: NoiseSchedule | None, prediction_type: str = "epsilon",
                 info: dict | None = None, text_encoder=None, vae=None, sampler_config: dict | None = None):
        if (prediction_type == "flow") != (schedule is None):
            raise ValueError("a flow-matching model (prediction_type='flow') takes schedule=None; a diffusion model "
                             f"needs its noise schedule (got prediction_type={prediction_type!r}, schedule={schedule}).")
        self.unet = unet.eval()
        self.vae = vae.eval() if vae is not None else None
        if vae is not None and (self.unet.config.in_channels, self.unet.config.sample_size) != vae.latent_shape[:2]:
            raise ValueError(f"the denoiser takes {self.unet.config.in_channels} channels at "
                             f"{self.unet.config.sample_size}x{self.unet.config.sample_size}, but the VAE's latents "
                             f"are {vae.latent_shape}.")
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.info = info or {}
        self.sampler_config = dict(sampler_config or {})
        if self.is_consistency and (schedule is None or prediction_type != "epsilon"):
            raise ValueError("a consistency student predicts the noise under its teacher's schedule.")
        self.text_encoder = text_encoder  # a TinyCLIP (its token_states) for a text-conditioned model
        if self.info.get("conditioning") == "text" and text_encoder is None:
            raise ValueError("a text-conditioned model needs its text_encoder (the TinyCLIP it was trained with).")

    @classmethod
    def from_checkpoint(cls, name: str, device: torch.device) -> "DiffusionModel":
        from . import pretrained

        entry = pretrained.info(name)
        tensors, meta = pretrained.load_tensors(name)
        net = denoiser_from_dict(meta.get("architecture", "unet"), meta["model_config"])
        net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        text_encoder = pretrained.load(meta["text_encoder"], device) if meta.get("text_encoder") else None
        vae = pretrained.load(meta["vae"], device) if meta.get("vae") else None
        schedule = get_schedule(meta["schedule"]) if meta.get("schedule") else None  # None: flow matching
        return cls(net.to(device), schedule, meta.get("prediction_type", "epsilon"), entry, text_encoder, vae,
                   meta.get("sampler_config"))

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def is_flow(self) -> bool:
        """True for a flow-matching model (samplers ``"euler"`` and ``"heun"``)."""
        return self.prediction_type == "flow"

    @property
    def is_consistency(self) -> bool:
        """True for a consistency-distilled student (sampler ``"consistency"``, 1-4 steps)."""
        return self.info.get("method") == "consistency"

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers this model takes; the first is its default."""
        return FLOW_SAMPLERS if self.is_flow else CONSISTENCY_SAMPLERS if self.is_consistency else SAMPLERS

    @property
    def default_sampler(self) -> str:
        return self.samplers[0]

    @property
    def config(self) -> UNetConfig | DiTConfig:
        return self.unet.config

    def __repr__(self) -> str:
        name = self.info.get("name", "unnamed")
        return (f"DiffusionModel({name!r}, {self.unet.num_parameters() / 1e6:.2f}M parameters, "
                f"schedule={self.schedule.name if self.schedule else 'flow matching'}, "
                f"prediction_type={self.prediction_type!r})")

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, generator: torch.Generator | None = None, labels=None,
               prompts=None, guidance_scale: float | None = None, sampler: str | None = None, eta: float = 0.0,
               batch_size: int = 256, clip_sample: bool | None = None, output: str = "images") -> torch.Tensor:
        """Draw ``n`` images: ``(n, C, H, W)`` in [-1, 1] (a latent model decodes its latents).

        Args:
            steps: sampler steps (default: 50 for DDIM and Euler, 20 for DPM-Solver++, 25 for Heun,
                2 for a consistency student, all T for DDPM).
            generator: a CPU ``torch.Generator`` fixes every random draw.
            labels, prompts: the condition (class-conditional models: an int or n ints; text models:
                one prompt or n prompts). None: the unconditional model (null label / empty prompt).
            guidance_scale: classifier-free guidance ``w`` in [0, 50]; None: the model's default
                (``info["default_guidance_scale"]``) when a condition is given.
            sampler: ``"ddim"`` (the default; deterministic with ``eta = 0``), ``"ddpm"``, or
                ``"dpmsolver++"`` (DPM-Solver++ 2M, deterministic; good at 10-20 steps). A flow-matching
                model takes ``"euler"`` (its default) or ``"heun"``; a consistency student ``"consistency"``
                (1-4 steps; ``model.samplers`` lists what a model takes).
            clip_sample: clamp the ``x0`` each step predicts to [-1, 1] and re-derive the noise
                estimate from it (``parameterization.clamp_x0_prediction``), so that both stay consistent.
                diffusers' DDIM clamp keeps the model's noise estimate instead, which drifts off the
                condition under guidance (digits-class, w = 3, DDIM-50: 40% of 500 digits right against
                100%); without any clamp shapes-text's samples saturate as the step count grows.
                None: on for pixel models, off for latent models (latents are not bounded).
            output: ``"images"``, or ``"latents"`` for a latent model's scaled latents, undecoded.
        """
        n = check_positive_int("n", n)
        sampler = check_choice("sampler", sampler or self.default_sampler, self.samplers)
        check_choice("output", output, ("images", "latents") if self.vae is not None else ("images",))
        clip_sample = self.vae is None if clip_sample is None else clip_sample
        cond = self.info.get("conditioning")
        if cond is None and (labels is not None or prompts is not None or guidance_scale is not None):
            raise ValueError(f"{self.info.get('name', 'this model')} is unconditional: it takes no labels, prompts "
                             "or guidance_scale.")
        if prompts is not None and cond != "text":
            raise ValueError("prompts need a text-conditioned model (info(name)['conditioning'] == 'text').")
        if labels is not None and cond != "class":
            raise ValueError("labels need a class-conditioned model (info(name)['conditioning'] == 'class').")
        label_tensor = self._labels(labels, n) if labels is not None else None
        if guidance_scale is None and (label_tensor is not None or prompts is not None):
            guidance_scale = self.info.get("default_guidance_scale")  # None: the plain conditional model
        if guidance_scale is not None:
            guidance_scale = check_guidance_scale(guidance_scale)
            if label_tensor is None and prompts is None:
                raise ValueError("guidance_scale needs a condition to guide towards: pass labels (or prompts).")
        cfg = self.unet.config
        steps = steps if steps is not None else DEFAULT_STEPS.get(sampler, getattr(self.schedule, "num_timesteps", 0))
        steps = check_positive_int("steps", steps)
        w = 1.0 if guidance_scale is None else guidance_scale
        s = self._sampler(sampler, clip_sample)
        text = self._text(prompts, n) if cond == "text" else None
        if text is not None and w != 1.0:
            denoiser = ClassifierFreeGuidance(self.unet, w, null_context=text[2], null_mask=text[3])
        else:
            denoiser = self.unet if w == 1.0 else ClassifierFreeGuidance(self.unet, w)
        out = []
        for lo in range(0, n, batch_size):
            m = min(batch_size, n - lo)
            s.set_timesteps(steps)  # per batch: DPM-Solver++ remembers its previous step within a loop
            x = torch.randn((m, cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=generator).to(self.device)
            kw = {"eta": eta} if sampler == "ddim" else {}
            cond_kw = {}
            if label_tensor is not None:
                cond_kw["class_labels"] = label_tensor[lo:lo + m].to(self.device)
            if text is not None:
                cond_kw["encoder_hidden_states"] = text[0][lo:lo + m]
                cond_kw["encoder_attention_mask"] = text[1][lo:lo + m]
            for t in s.timesteps:
                out_t = denoiser(x, t.to(self.device), **cond_kw).float()
                if clip_sample and not self.is_consistency:  # the consistency sampler clamps its own x0
                    out_t = self._clamp_x0(out_t, x, t)
                x = s.step(out_t, t if self.is_flow else int(t), x, generator=generator, **kw).prev_sample
            out.append(x.cpu() if self.vae is not None else x.clamp(-1, 1).cpu())
        x = torch.cat(out)
        if self.vae is None or output == "latents":
            return x
        from .latent import decode

        return decode(self.vae, x, batch_size=batch_size)

    def _sampler(self, name: str, clip_sample: bool = True):
        """A fresh sampler; the diffusion ones without their own clamp (``sample`` clamps, if asked)."""
        if name == "consistency":
            return ConsistencySampler(self.schedule, clip_sample=clip_sample, **self.sampler_config)
        if name == "euler":
            return FlowMatchEulerSampler()
        if name == "heun":
            return FlowMatchHeunSampler()
        if name == "dpmsolver++":
            return DPMSolverSampler(self.schedule, prediction_type=self.prediction_type)
        return (DDIMSampler if name == "ddim" else DDPMSampler)(self.schedule, prediction_type=self.prediction_type,
                                                                 clip_sample=False)

    def _clamp_x0(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Clamp the x0 that ``out`` implies to [-1, 1] and return the output consistent with it."""
        if not self.is_flow:
            return clamp_x0_prediction(out, x, float(self.schedule.alphas_cumprod[int(t)]), self.prediction_type)
        return flow_clamp_x0(out, x, float(t) / NUM_TRAIN_TIMESTEPS)

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
        layers = [m for m in self.unet.modules() if type(m).__name__ == "CrossAttention2d"]
        b = len(prompts)

        def collect(module, inputs, output):
            att = module.last_attention[:b]  # conditional half only: (B, heads, HW, L)
            side = int(round(att.shape[2] ** 0.5))
            m = att.mean(1).transpose(1, 2).reshape(b, att.shape[-1], side, side)  # (B, L, r, r)
            sums[side] = sums.get(side, 0) + m.float().cpu()

        hooks = [m.register_forward_hook(collect) for m in layers]
        self.unet.store_attention(True)
        try:
            images = self.sample(b, steps=steps, prompts=prompts, guidance_scale=guidance_scale, generator=generator)
        finally:
            self.unet.store_attention(False)
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

    def _labels(self, labels, n: int) -> torch.Tensor:
        """An int or ``n`` ints, each a class in [0, num_classes - 1], as an ``(n,)`` long tensor."""
        k = self.unet.config.num_classes
        t = torch.as_tensor(labels)
        if t.is_floating_point() or t.dtype == torch.bool or t.ndim > 1:
            raise ValueError(f"labels must be an int or a sequence of n ints in [0, {k - 1}], got {labels!r}.")
        t = t.long().expand(n) if t.ndim == 0 else t.long()
        if t.shape != (n,):
            raise ValueError(f"labels must be one int or n = {n} ints, got {t.shape[0]}.")
        if int(t.min()) < 0 or int(t.max()) >= k:
            raise ValueError(f"labels must lie in [0, {k - 1}] (the classes this model knows), got {t.tolist()}.")
        return t
