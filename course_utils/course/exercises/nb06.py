"""Checkers for notebook 06, latent diffusion.

Exercises: the reparameterisation trick, the KL term's closed form, the latent scale factor;
questions on the compression ratio, on what a latent channel carries, and on where the time
of a latent sampler goes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...models.vae import DiagonalGaussian
from .core import CheckResult, ask_choice, ask_number, check_cases

# --- Exercise 1: the reparameterisation trick -------------------------------------------------


def _reparam_cases():
    g = torch.Generator().manual_seed(6)
    cases = []
    for shape in ((2, 4, 8, 8), (3, 1, 2, 2)):
        mean, logvar, eps = (torch.randn(shape, generator=g) for _ in range(3))
        std = torch.exp(0.5 * logvar)
        slips = [(mean + logvar.exp() * eps, "exp(logvar) is the variance; scale the noise by the standard "
                                             "deviation, exp(0.5 * logvar)."),
                 (mean + logvar * eps, "logvar is a log-variance: turn it into a standard deviation first."),
                 (mean + eps, "The noise must be scaled by the standard deviation."),
                 (std * eps, "Add the mean: z = mean + std * eps."),
                 (mean * eps + std, "z = mean + std * eps: the noise multiplies the std, not the mean.")]
        cases.append(((mean, logvar, eps), mean + std * eps, slips))
    return cases


def check_reparameterize(fn: Callable) -> CheckResult:
    """``fn(mean, logvar, eps)`` must return ``mean + exp(0.5 * logvar) * eps``."""
    return check_cases("Exercise 1 (the reparameterisation trick)", fn, _reparam_cases(), atol=1e-6, rtol=1e-6,
                       hint="z = mean + exp(0.5 * logvar) * eps.")


# --- Exercise 2: the KL term ------------------------------------------------------------------


def _kl_cases():
    g = torch.Generator().manual_seed(7)
    cases = []
    for shape in ((2, 4, 8, 8), (5, 3)):
        mean, logvar = torch.randn(shape, generator=g), 0.5 * torch.randn(shape, generator=g)
        terms = (mean**2 + logvar.exp() - 1 - logvar).flatten(1)  # (B, D)
        expected = DiagonalGaussian(mean, logvar).kl()  # (B,), the package's closed form
        slips = [(terms.sum(1), "Halve it: KL = 0.5 * sum(mean^2 + var - 1 - logvar)."),
                 (0.5 * terms.mean(1), "Sum over the latent elements of each example, do not average them."),
                 (0.5 * terms.sum(), "Return one value per example: sum over everything but the batch dimension."),
                 (0.5 * (mean**2 + logvar - 1 - logvar.exp()).flatten(1).sum(1),
                  "var = exp(logvar) goes with a plus sign, logvar with a minus sign."),
                 (0.5 * (mean**2 + logvar.exp() - logvar).flatten(1).sum(1),
                  "Keep the -1 per element: without it a standard normal q would have KL > 0.")]
        cases.append(((mean, logvar), expected, slips))
    return cases


def check_kl(fn: Callable) -> CheckResult:
    """``fn(mean, logvar)`` -> ``(B,)``: ``KL(N(mean, exp(logvar)) || N(0, I))`` per example."""
    return check_cases("Exercise 2 (the KL term)", fn, _kl_cases(), atol=1e-5, rtol=1e-5,
                       hint="0.5 * (mean^2 + exp(logvar) - 1 - logvar), summed over all dims but the first.")


# --- Exercise 3: the scale factor -------------------------------------------------------------


def _scale_cases():
    g = torch.Generator().manual_seed(8)
    cases = []
    for spread, offset in ((4.0, 0.0), (0.25, 1.5)):
        z = spread * torch.randn(256, 4, 8, 8, generator=g) + offset
        std = z.std()
        slips = [(std, "That is the spread itself; the factor divides it out: 1 / std."),
                 (1 / z.var(), "Use the standard deviation, not the variance."),
                 (1 / z.abs().max(), "Normalise the spread (the std), not the largest value.")]
        cases.append(((z,), 1 / std, slips))
    return cases


def check_scaling_factor(fn: Callable) -> CheckResult:
    """``fn(latents)`` -> the number that gives ``latents * factor`` a standard deviation of 1."""
    return check_cases("Exercise 3 (the latent scale factor)", fn, _scale_cases(), atol=1e-4, rtol=1e-3,
                       hint="The factor makes the latents' standard deviation 1: 1 / latents.std().")


# --- Questions --------------------------------------------------------------------------------


def compression_question(pixels: int, latents: int):
    """How many times fewer numbers the latent holds; the answer is computed from the VAE."""
    return ask_number("Question A (how much smaller)", f"An image is {pixels:,} numbers and its latent {latents:,}. "
                      "How many times fewer numbers does the diffusion model have to denoise?",
                      pixels / latents, rtol=0.01, hint="Divide the pixel count by the latent count.")


def channel_question(correlations: dict[str, torch.Tensor], feature: str | None = None):
    """Which latent channel follows ``feature`` most closely (by |correlation|, measured on the
    VAE in the notebook, so the answer is whatever the data say). ``None``: the feature whose
    closest channel leads the runner-up by the widest margin, so the question has a clear answer."""
    if feature is None:
        def margin(name):
            top = correlations[name].abs().sort(descending=True).values
            return float(top[0] - top[1]) if len(top) > 1 else float(top[0])

        feature = max(correlations, key=margin)
    r = correlations[feature].abs()  # (C,)
    options = [f"channel {c}" for c in range(len(r))]
    answer = options[int(r.argmax())]
    table = ", ".join(f"{o}: {float(v):.2f}" for o, v in zip(options, r))
    return ask_choice(
        "Question B (what a channel carries)",
        f"Step through the explorer above. Which latent channel follows the image's {feature} most closely?",
        options, answer,
        explanation=f"|correlation| with {feature} over the images shown: {table}. The VAE was never told to "
                    "sort information by channel; it found its own split, which is why the course text's "
                    "per-channel description of Stable Diffusion's VAE need not hold for this one.",
        hints={o: "Look where the channel's map is brightest/darkest: inside the shape, or on the background? "
                  "Compare it with the image's brightness." for o in options if o != answer})


TIME_OPTIONS = [
    "the denoiser's steps: the decoder runs once per image, the denoiser once per step",
    "the VAE decoder: it maps back to full resolution, so it dominates",
    "encoding the prompt with the text encoder",
    "drawing the starting noise",
]


def time_question():
    return ask_choice(
        "Question C (where the time goes)",
        "A latent sampler runs the denoiser for every step and the decoder once at the end. With 25 steps, "
        "where does most of the time go?",
        TIME_OPTIONS, TIME_OPTIONS[0],
        explanation="The decoder is bigger per call than one latent denoiser step, but it runs once; the "
                    "denoiser runs 25 (or 2 x 25 with guidance) times. The timing table shows the split.",
        hints={TIME_OPTIONS[1]: "Count the calls: one decode per image against one denoiser pass per step.",
               TIME_OPTIONS[2]: "The prompt is encoded once per sample, before the loop.",
               TIME_OPTIONS[3]: "One randn call: negligible."})
