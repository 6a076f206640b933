"""Classifier-free guidance, and two ways to use large scales without saturating the image.

**Classifier-free guidance (CFG)**, Ho & Salimans 2022, eq. 6 (their ``w`` is ours minus one):

    eps = eps_uncond + w * (eps_cond - eps_uncond)

``w`` is diffusers' ``guidance_scale``: ``w = 0`` is the unconditional model, ``w = 1`` the plain
conditional one, ``w > 1`` pushes past it, away from "any image" and towards "this condition".
The same network gives both predictions because it was trained with the condition dropped some
of the time (a null class label, or the empty prompt).

**Adaptive projected guidance (APG)**, Sadat et al. 2024, "Eliminating Oversaturation and Artifacts
of High Guidance Scales in Diffusion Models" (arXiv 2410.02416), Algorithm 1. It works on the
denoised predictions ``D = x0`` (``parameterization.to_x0``), where CFG reads
``D = D_c + (w - 1) (D_c - D_u)``, and changes the update ``dD = D_c - D_u`` before scaling it:

    dD <- dD + beta * dD_prev             reverse momentum (beta < 0), a running sum over the steps
    dD <- dD * min(1, r / ||dD||)          norm threshold r, per example
    dD_par  = (<dD, D_c> / ||D_c||^2) D_c  the part along the conditional prediction itself,
    dD_orth = dD - dD_par                  and the rest; norms and inner products over (C, H, W)
    D = D_c + (w - 1) (dD_orth + eta * dD_par)

``dD_par`` only rescales ``D_c``: more contrast when positive, as it mostly is, a push the same way at
every step that saturates the image at a large ``w``. ``eta = 1``, no threshold, no momentum: CFG exactly.

**Guidance interval**, Kynkaanniemi et al. 2024, "Applying Guidance in a Limited Interval Improves
Sample and Distribution Quality in Diffusion Models" (arXiv 2404.07724): guide only at timesteps
``t_lo <= t <= t_hi`` (``t`` as the network receives it), and use the plain conditional prediction
elsewhere (one pass of the batch instead of two). Both wrappers take it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ._validation import as_float, check_choice
from .families import FLOW_PREDICTION
from .flow_matching import NUM_TRAIN_TIMESTEPS
from .parameterization import PREDICTION_TYPES, flow_to_x0, from_x0_eps, to_x0

MAX_GUIDANCE_SCALE = 50.0  # far past any useful value; larger ones only produce saturated noise
# APG's r (the paper tunes it per model): digits-class's x0 update D_c - D_u has norm 0.2-5 at t <= 900
APG_NORM_THRESHOLD = 2.5  # (16x16 pixels in [-1, 1]), so 2.5 caps only the noisiest steps
GUIDANCE_METHODS = ("cfg", "apg")  # DiffusionModel.sample(guidance=...): ClassifierFreeGuidance, AdaptiveProjectedGuidance


def check_guidance_scale(guidance_scale) -> float:
    """A finite number in [0, MAX_GUIDANCE_SCALE]; anything else is refused with the accepted range."""
    try:
        if isinstance(guidance_scale, (str, bytes, bool)):
            raise TypeError
        w = float(guidance_scale)
    except (TypeError, ValueError):
        raise TypeError(f"guidance_scale must be a number in [0, {MAX_GUIDANCE_SCALE:g}], "
                        f"got {type(guidance_scale).__name__}.") from None
    if not math.isfinite(w) or not 0.0 <= w <= MAX_GUIDANCE_SCALE:
        raise ValueError(f"guidance_scale must lie in [0, {MAX_GUIDANCE_SCALE:g}] (0: unconditional, 1: conditional, "
                         f"3-7: typical), got {guidance_scale}.")
    return w


def check_interval(interval) -> tuple[float, float] | None:
    """None (guide at every step), or ``(t_lo, t_hi)`` with ``0 <= t_lo <= t_hi``, in the network's timesteps."""
    if interval is None:
        return None
    if not isinstance(interval, (tuple, list)) or len(interval) != 2:
        raise TypeError(f"interval must be None or a pair (t_lo, t_hi) of timesteps, got {type(interval).__name__}.")
    lo = as_float("interval's t_lo", interval[0], 0, None, note="the least noisy timestep that is guided")
    return lo, as_float("interval's t_hi", interval[1], lo, None, note="the noisiest timestep guided, >= t_lo")


def guide(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """The guided prediction ``eps_uncond + w (eps_cond - eps_uncond)``; all ``(B, C, H, W)``."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def project(v: torch.Tensor, onto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v_par, v_orth)``, both ``(B, ...)`` like ``v``: ``v_par = <v, u> u`` with ``u = onto / ||onto||`` and
    ``v_orth = v - v_par``, per example (sums over all dimensions but the first, in float64)."""
    dims = tuple(range(1, v.ndim))
    v64, u = v.double(), nn.functional.normalize(onto.double(), dim=dims)
    par = (v64 * u).sum(dims, keepdim=True) * u
    return par.to(v.dtype), (v64 - par).to(v.dtype)


class ClassifierFreeGuidance(nn.Module):
    """Wrap a conditional denoiser so that it returns the guided prediction, with its own signature.

    Called like the model, ``cfg(x_t, t, class_labels=..., encoder_hidden_states=...,
    encoder_attention_mask=...)``; it runs the conditional and the unconditional pass as one
    batch of ``2B`` and combines them. The unconditional pass uses the null class label
    (``model.config.num_classes``) or ``null_context`` (the encoding of the empty prompt,
    ``(1, L, D)`` or ``(B, L, D)``, with ``null_mask``).

    Args:
        model: a class- or text-conditional U-Net.
        guidance_scale: ``w`` in [0, 50].
        null_context, null_mask: the unconditional text input, for a text-conditional model.
        interval: ``(t_lo, t_hi)``: guide only there, the conditional prediction elsewhere (module
            docstring); None: at every step.
    """

    zero_is_unconditional = True  # w = 0 needs only the unconditional pass

    def __init__(self, model: nn.Module, guidance_scale: float, null_context: torch.Tensor | None = None,
                 null_mask: torch.Tensor | None = None, interval: tuple[float, float] | None = None):
        super().__init__()
        self.model = model
        self.guidance_scale = check_guidance_scale(guidance_scale)
        self.null_context = null_context
        self.null_mask = null_mask
        self.interval = check_interval(interval)

    @property
    def config(self):
        return self.model.config

    def reset(self) -> None:
        """Forget what earlier steps left behind, before a new sampling run: nothing, for CFG."""

    def combine(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor, x: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        """The guided prediction from the two passes at ``(x_t, t)``; all ``(B, C, H, W)``."""
        return guide(pred_uncond, pred_cond, self.guidance_scale)

    def _null_labels(self, class_labels: torch.Tensor) -> torch.Tensor:
        n = getattr(self.model.config, "num_classes", None)
        if n is None:
            raise ValueError("class_labels were given but the model is not class-conditional (num_classes=None).")
        return torch.full_like(torch.as_tensor(class_labels), n)

    def _null_text(self, context: torch.Tensor, mask: torch.Tensor | None):
        if self.null_context is None:
            raise ValueError("a text-conditional model needs null_context (the encoding of the empty prompt).")
        b = context.shape[0]
        null = self.null_context.to(context.device, context.dtype).expand(b, *self.null_context.shape[1:])
        if null.shape != context.shape:
            raise ValueError(f"null_context must match the prompt encoding's (L, D) = {tuple(context.shape[1:])}, "
                             f"got {tuple(self.null_context.shape[1:])}.")
        null_mask = None
        if mask is not None:
            if self.null_mask is None:
                raise ValueError("encoder_attention_mask was given but null_mask was not.")
            null_mask = self.null_mask.to(mask.device).expand(b, *self.null_mask.shape[1:])
        return null, null_mask

    def _unconditional(self, cond: dict) -> dict:
        """The null condition's keyword arguments for the model, for the given condition's."""
        null = {}
        if cond["class_labels"] is not None:
            null["class_labels"] = self._null_labels(cond["class_labels"])  # (B,)
        if cond["encoder_hidden_states"] is not None:
            context, null_mask = self._null_text(cond["encoder_hidden_states"], cond["encoder_attention_mask"])
            null["encoder_hidden_states"] = context  # (B, L, D)
            if null_mask is not None:
                null["encoder_attention_mask"] = null_mask  # (B, L)
        return null

    def forward(self, x: torch.Tensor, t, class_labels=None, encoder_hidden_states=None,
                encoder_attention_mask=None) -> torch.Tensor:
        if class_labels is None and encoder_hidden_states is None:
            raise ValueError("classifier-free guidance needs a condition: class_labels or encoder_hidden_states.")
        if class_labels is not None:
            class_labels = torch.as_tensor(class_labels, device=x.device)
        cond = {"class_labels": class_labels, "encoder_hidden_states": encoder_hidden_states,
                "encoder_attention_mask": encoder_attention_mask}
        w, t = self.guidance_scale, torch.as_tensor(t, device=x.device)
        inside = None if self.interval is None else (t >= self.interval[0]) & (t <= self.interval[1])  # like t
        if w == 1.0 or (inside is not None and not inside.any()):  # exactly the conditional model: one pass
            return self.model(x, t, **cond)
        uncond = self._unconditional(cond)
        if w == 0.0 and self.zero_is_unconditional and (inside is None or inside.all()):  # one pass too
            return self.model(x, t, **uncond)
        b = x.shape[0]
        t2 = torch.cat([t.expand(b), t.expand(b)]) if t.ndim <= 1 else t
        both = {k: torch.cat([cond[k], v]) for k, v in uncond.items()}  # each (2B, ...): conditional first
        out = self.model(torch.cat([x, x]), t2, **both)  # (2B, C, H, W)
        guided = self.combine(out[:b], out[b:], x, t)
        if inside is None or inside.all():
            return guided
        return torch.where(inside.reshape(-1, *[1] * (x.ndim - 1)), guided, out[:b])  # per example, (B,) t


class AdaptiveProjectedGuidance(ClassifierFreeGuidance):
    """Classifier-free guidance with APG's update (module docstring): ``ClassifierFreeGuidance``'s call
    and batching, the two predictions combined on their ``x0`` and returned as the model's
    ``prediction_type`` again.

    The momentum makes it stateful: each step adds to a running update. ``reset()`` starts a new run;
    it also starts by itself when ``t`` goes up or the batch shape changes (a new run of the same sampler).

    Args:
        model: a class- or text-conditional network.
        guidance_scale: ``w`` in [0, 50].
        schedule: the model's ``NoiseSchedule`` (for ``x0``); None for a flow-matching model.
        prediction_type: ``"epsilon"``, ``"sample"``, ``"v_prediction"``, or ``"flow"`` (``t = 1000 sigma``).
        eta: the weight of the parallel part, in [0, 1] (paper and default: 0; 1 keeps CFG's).
        norm_threshold: ``r``, the largest norm of the update over (C, H, W) (``APG_NORM_THRESHOLD``,
            chosen for the course's 16x16 digits); None: no threshold.
        momentum: ``beta`` in (-1, 1); negative is the paper's "reverse momentum" (reference code: -0.5
            to -0.75); 0: none.
        interval, null_context, null_mask: as ``ClassifierFreeGuidance``.
    """

    zero_is_unconditional = False

    def __init__(self, model: nn.Module, guidance_scale: float, schedule=None, prediction_type: str = "epsilon",
                 eta: float = 0.0, norm_threshold: float | None = APG_NORM_THRESHOLD, momentum: float = -0.5,
                 interval: tuple[float, float] | None = None, null_context: torch.Tensor | None = None,
                 null_mask: torch.Tensor | None = None):
        super().__init__(model, guidance_scale, null_context, null_mask, interval)
        self.prediction_type = check_choice("prediction_type", prediction_type, (*PREDICTION_TYPES, FLOW_PREDICTION))
        if (self.prediction_type == FLOW_PREDICTION) != (schedule is None):
            raise ValueError("APG needs the noise schedule of a diffusion model (to read x0 off its prediction) and "
                             f"schedule=None for a flow-matching one; got prediction_type={prediction_type!r}, "
                             f"schedule={'None' if schedule is None else type(schedule).__name__}.")
        self.schedule = schedule
        self.eta = as_float("eta", eta, 0, 1, note="the weight of the parallel part: 0 APG, 1 CFG's")
        self.norm_threshold = None if norm_threshold is None else as_float(
            "norm_threshold", norm_threshold, 0, None, low_open=True, note="r, the largest norm of the update; None: off")
        self.momentum = as_float("momentum", momentum, -1, 1, low_open=True, high_open=True,
                                 note="beta: negative for reverse momentum; 0: none")
        self.reset()

    def reset(self) -> None:
        """Forget the running update: the next call starts a new sampling run."""
        self.running, self._last_t = None, None

    def _coefficients(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha, sigma)`` at ``t``, float64, broadcastable against ``x`` (flow: ``1 - s`` and ``s``)."""
        shape = (-1, *[1] * (x.ndim - 1)) if t.ndim else ()
        if self.prediction_type == FLOW_PREDICTION:
            s = t.double() / NUM_TRAIN_TIMESTEPS
            return (1 - s).reshape(shape), s.reshape(shape)
        a = self.schedule.alphas_cumprod.to(x.device)[t.long()]
        return a.sqrt().reshape(shape), (1 - a).sqrt().reshape(shape)

    def _to_x0(self, out: torch.Tensor, x: torch.Tensor, alpha, sigma) -> torch.Tensor:
        if self.prediction_type == FLOW_PREDICTION:
            return flow_to_x0(out.double(), x.double(), sigma)
        return to_x0(out.double(), x.double(), alpha, sigma, self.prediction_type)

    def _from_x0(self, x0: torch.Tensor, x: torch.Tensor, alpha, sigma) -> torch.Tensor:
        """The prediction of the model's type whose ``x0`` is ``x0`` at ``x_t``."""
        if self.prediction_type == FLOW_PREDICTION:
            return (x.double() - x0) / sigma  # x0 = x - sigma v
        return from_x0_eps(x0, (x.double() - alpha * x0) / sigma, alpha, sigma, self.prediction_type)

    def _momentum(self, update: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``running = update + beta * running`` (the paper's MomentumBuffer); a new run starts afresh."""
        last, self._last_t = self._last_t, float(t.max())
        if self.running is None or self.running.shape != update.shape or self._last_t > last:
            self.running = torch.zeros_like(update)
        self.running = update + self.momentum * self.running
        return self.running

    def combine(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor, x: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        """Algorithm 1 of Sadat et al. 2024 on the ``x0`` of both predictions; all ``(B, C, H, W)``."""
        alpha, sigma = self._coefficients(t, x)
        if bool((sigma == 0).any()):  # flow at sigma = 0 (no sampler visits it): x0 = x_t, nothing to guide
            return pred_cond
        x0_cond = self._to_x0(pred_cond, x, alpha, sigma)  # D_c, (B, C, H, W) float64
        update = self._momentum(x0_cond - self._to_x0(pred_uncond, x, alpha, sigma), t)  # D_c - D_u, with momentum
        if self.norm_threshold is not None:
            norm = update.flatten(1).norm(dim=1).reshape(-1, *[1] * (x.ndim - 1))  # (B, 1, 1, 1)
            update = update * (self.norm_threshold / norm).clamp(max=1.0)  # min(1, r / ||update||)
        par, orth = project(update, x0_cond)
        x0 = x0_cond + (self.guidance_scale - 1) * (orth + self.eta * par)
        return self._from_x0(x0, x, alpha, sigma).to(pred_cond.dtype)


def check_guidance(method, options) -> tuple[str, dict]:
    """``method``, one of ``GUIDANCE_METHODS``, and ``options``, None or a dict of its keyword arguments:
    ``interval`` for ``"cfg"``; ``eta``, ``norm_threshold``, ``momentum``, ``interval`` for ``"apg"``."""
    method = check_choice("guidance", method, GUIDANCE_METHODS)
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"guidance_options must be a dict of keyword arguments, got {type(options).__name__}.")
    options = dict(options or {})
    accepted = ("interval",) if method == "cfg" else ("eta", "norm_threshold", "momentum", "interval")
    unknown = sorted(map(str, set(options) - set(accepted)))
    if unknown:
        raise ValueError(f"guidance_options {unknown} are not options of guidance={method!r}; it takes {list(accepted)}.")
    return method, options


def make_guidance(method: str, model: nn.Module, guidance_scale: float, schedule=None,
                  prediction_type: str = "epsilon", options: Mapping | None = None,
                  null_context: torch.Tensor | None = None, null_mask: torch.Tensor | None = None) -> nn.Module:
    """The guidance wrapper ``method`` names, built with ``options`` (``check_guidance``)."""
    method, options = check_guidance(method, options)
    if method == "cfg":
        return ClassifierFreeGuidance(model, guidance_scale, null_context, null_mask, **options)
    return AdaptiveProjectedGuidance(model, guidance_scale, schedule, prediction_type, null_context=null_context,
                                     null_mask=null_mask, **options)
