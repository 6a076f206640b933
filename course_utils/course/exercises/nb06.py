"""Checkers for notebook 06, latent diffusion.

Exercises: the VAE's sampling and loss (a build: the reparameterisation trick, the KL term's
closed form and the training loss, graded by unit cases and by a short training run), the latent
scale factor; questions on the compression ratio, on what a latent channel carries, and on where
the time of a latent sampler goes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ... import latent
from ...data import make_shapes
from ...models.vae import VAE, DiagonalGaussian, VAEConfig, vae_loss
from .core import (BuildExercise, CheckResult, Miss, _diagnose, ask_choice, ask_number, call_learner, check_cases,
                   expect_close, expect_seeded, grade_build)

# --- Build: the VAE's sampling and loss ------------------------------------------------------

# The outcome run: a narrower VAE than shapes-vae (8 base channels instead of 16, the same 8x8x4
# latents) so that two runs (yours and the package's) take seconds on one CPU core; a higher
# learning rate than the recipe's 2e-3, for a short run.
SHORT_VAE = VAEConfig(base_channels=8, groups=4)
SHORT_RUN = {"steps": 150, "batch_size": 16, "lr": 5e-3, "seed": 0}
MIN_PSNR_DB = 11.5  # the package's loss reaches 13.0 dB in SHORT_RUN (13.0-15.8 over seeds 0-3); the average image 9.9

VAE_BUILD = BuildExercise(
    "Build (the VAE's sampling and loss)",
    "write sample_latent, kl_to_standard_normal and vae_training_loss; the cells after it train the VAE with "
    "your loss once it is correct.",
    ("sample_latent: the shape and exact value of z = mean + exp(0.5 * logvar) * eps for a seeded generator; the "
     "same seed gives the same z and another seed another z; gradients reach mean and logvar",
     "kl_to_standard_normal: one value per example, equal to the closed form on random inputs and 0 at mean = 0, "
     "logvar = 0",
     "vae_training_loss: 'recon', 'kl' and 'loss' equal the package's vae_loss on a fixed batch and generator, "
     "at kl_weight 1e-3 and 0.5",
     f"outcome: a VAE (8x8x4 latents) trained with your loss for {SHORT_RUN['steps']} seeded steps of "
     f"{SHORT_RUN['batch_size']} shapes reconstructs 256 held-out shapes at a PSNR of at least {MIN_PSNR_DB:g} dB "
     "(printed next to what the package's loss reaches on the same budget)"),
)


@functools.lru_cache(maxsize=1)
def _outcome_data() -> tuple[torch.Tensor, torch.Tensor]:
    """1,024 training shapes (seed 0) and 256 held-out ones (seed 1): ``(N, 3, 32, 32)`` each."""
    return make_shapes(1024, seed=0).images, make_shapes(256, seed=1).images


def _psnr_after(loss_fn: Callable, steps: int) -> float:
    """Held-out PSNR (dB) of a ``SHORT_VAE`` trained with ``loss_fn`` for ``steps`` steps of ``SHORT_RUN``."""
    train, held_out = _outcome_data()
    run = latent.train_vae(train, config=SHORT_VAE, loss_fn=loss_fn, **(SHORT_RUN | {"steps": steps}), progress=False,
                         log_every=steps)
    return latent.reconstruction_error(run.model, held_out)["psnr_db"]


@functools.lru_cache(maxsize=4)
def _package_psnr(steps: int) -> float:
    return _psnr_after(vae_loss, steps)


def _average_image_psnr() -> float:
    """PSNR of drawing every held-out shape as the training set's average image (a model that learnt nothing)."""
    train, held_out = _outcome_data()
    return 10 * math.log10(4 / float((held_out - train.mean(0)).pow(2).mean()))


def _expect(got, expected, what: str, slips: list, hint: str, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """``expect_close``, with the hint of the known slip that ``got`` matches when it misses."""
    try:
        expect_close(got, expected, what, hint, atol=atol, rtol=rtol)
    except Miss:
        slip = _diagnose(got, slips)
        if slip:
            raise Miss(f"{what} is off. {slip}") from None
        raise


def _posterior(seed: int, shape: tuple[int, ...] = (2, 4, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``(mean, logvar)`` pair of ``shape``, as an encoder would output."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), 0.5 * torch.randn(shape, generator=g)


def _sample_slips(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> list:
    std = torch.exp(0.5 * logvar)
    return [(mean, "z is the mean: nothing was sampled. Draw eps from the generator and return "
                   "mean + exp(0.5 * logvar) * eps."),
            (mean + logvar.exp() * eps, "exp(logvar) is the variance; scale the noise by the standard deviation, "
                                        "exp(0.5 * logvar)."),
            (mean + logvar * eps, "logvar is a log-variance: turn it into a standard deviation first, exp(0.5 * logvar)."),
            (mean + eps, "Scale the noise by the standard deviation, exp(0.5 * logvar)."),
            (std * eps, "Add the mean: z = mean + std * eps."),
            (mean * eps + std, "z = mean + std * eps: the noise multiplies the std, not the mean."),
            (mean - std * eps, "z = mean + std * eps, with a plus: the checker replays your generator's eps.")]


NO_GRADIENT = ("z carries no gradient back to mean and logvar: torch.normal(mean, std), .detach() and torch.no_grad() "
               "give the right numbers without one, which is what the reparameterisation trick avoids. Draw eps "
               "alone, then compute z = mean + exp(0.5 * logvar) * eps.")


def _check_sample_latent(sample_latent: Callable) -> str:
    """z's shape and value for a seeded generator, its dependence on the seed, and its gradients."""
    mean, logvar = _posterior(6)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))  # (2, 4, 8, 8)
    expected = mean + torch.exp(0.5 * logvar) * eps
    z = call_learner(sample_latent, mean, logvar, torch.Generator().manual_seed(0))
    hint = "Draw eps once, torch.randn(mean.shape, generator=generator), then z = mean + exp(0.5 * logvar) * eps."
    try:
        _expect(z, expected, "z", _sample_slips(mean, logvar, eps), hint, atol=1e-6, rtol=1e-6)
    except Miss:
        if isinstance(z, torch.Tensor) and z.shape == expected.shape and _diagnose(z, _sample_slips(mean, logvar, eps)) is None:
            expect_seeded(lambda g: sample_latent(mean, logvar, g), "latent z")  # the generator's own hint first
        raise
    expect_seeded(lambda g: sample_latent(mean, logvar, g), "latent z")
    _check_sample_gradients(sample_latent, mean, logvar, eps)
    return "sample_latent draws the right z from its generator and passes gradients"


def _check_sample_gradients(sample_latent: Callable, mean: torch.Tensor, logvar: torch.Tensor,
                            eps: torch.Tensor) -> None:
    """dz/dmean = 1 and dz/dlogvar = 0.5 * std * eps, element by element."""
    mean, logvar = mean.clone().requires_grad_(), logvar.clone().requires_grad_()
    z = call_learner(sample_latent, mean, logvar, torch.Generator().manual_seed(0))
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        raise Miss(NO_GRADIENT)
    z.sum().backward()

    def zero(grad):
        return grad is None or not bool(grad.abs().sum() > 0)

    if zero(mean.grad) and zero(logvar.grad):
        raise Miss(NO_GRADIENT)
    if zero(mean.grad) or not torch.allclose(mean.grad, torch.ones_like(mean)):
        raise Miss("dz/dmean should be 1 everywhere: z = mean + std * eps uses the mean as it is, without .detach().")
    if zero(logvar.grad):
        raise Miss("No gradient reaches logvar: compute std = exp(0.5 * logvar) from logvar itself, without "
                   ".detach() or .item().")
    expect_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps, "dz/dlogvar",
                 "It should be 0.5 * std * eps: std = exp(0.5 * logvar).", atol=1e-5, rtol=1e-5)


def _kl_slips(mean: torch.Tensor, logvar: torch.Tensor) -> list:
    def per_example(terms):
        return 0.5 * terms.flatten(1).sum(1)  # (B,)

    var, terms = logvar.exp(), mean**2 + logvar.exp() - 1 - logvar
    return [(2 * per_example(terms), "Halve it: KL = 0.5 * sum(mean^2 + var - 1 - logvar)."),
            (-per_example(terms), "The sign is flipped: a KL divergence is never negative; it is "
                                  "+0.5 * sum(mean^2 + var - 1 - logvar)."),
            (per_example(mean**2 + var - logvar), "Keep the -1 per element: without it q = N(0, I) itself would "
                                                  "have a KL above 0."),
            (per_example(mean**2 + var - 1), "Keep the -logvar term: without it the KL does not reward spread "
                                             "and the posteriors collapse."),
            (per_example(mean**2 + logvar - 1 - var), "var = exp(logvar) goes with a plus sign, logvar with a minus."),
            (per_example(mean**2 + torch.exp(0.5 * logvar) - 1 - logvar),
             "sigma^2 is exp(logvar); exp(0.5 * logvar) is the standard deviation."),
            (0.5 * terms.flatten(1).mean(1), "Sum over the latent elements of each example, do not average them "
                                             "(the loss divides by their number later)."),
            (0.5 * terms.sum(), "Return one value per example: sum over every dimension but the first.")]


def _check_kl(kl_fn: Callable) -> str:
    """The closed form on random posteriors of two shapes, and 0 for q = N(0, I)."""
    cases = [_posterior(7), _posterior(8, (5, 3)), (torch.zeros(3, 4, 8, 8), torch.zeros(3, 4, 8, 8))]
    for mean, logvar in cases:
        got = call_learner(kl_fn, mean, logvar)
        what = "The KL at mean = 0, logvar = 0" if not mean.any() else f"The KL for {tuple(mean.shape)} inputs"
        _expect(got, DiagonalGaussian(mean, logvar).kl(), what, _kl_slips(mean, logvar),
                "KL = 0.5 * (mean^2 + exp(logvar) - 1 - logvar), summed over every dimension but the first.")
    return "the KL matches its closed form"


LOSS_PARTS = ("loss", "recon", "kl")


def _loss_slips(model, x: torch.Tensor, kl_weight: float) -> dict[str, list]:
    """What ``vae_loss``'s three parts become under known slips, with the same eps (seed 0)."""
    with torch.no_grad():
        posterior = model.encode(x)
        eps = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(0))
        err = (model.decode(posterior.mean + posterior.std * eps) - x) ** 2  # (B, 3, 32, 32)
        kl = posterior.kl()  # (B,)
        n = posterior.mean[0].numel()  # latent numbers per image
        recon, kl_el = err.mean(), kl.mean() / n
    per_pixel = "recon is the squared error averaged over every pixel of the batch (F.mse_loss's default), not summed."
    per_number = (f"Divide the batch's mean KL by the number of latent numbers per image ({n} here): kl_weight weighs "
                  "the KL per latent number, as in the package's vae_loss.")
    return {"recon": [(err.sum(), per_pixel), (err.flatten(1).sum(1).mean(), per_pixel),
                      (F.mse_loss(model.decode(posterior.mean), x),
                       "Decode a sampled z (your sample_latent with the generator you are given), not the mean.")],
            "kl": [(kl.mean(), per_number), (kl.sum(), per_number + " Average over the batch, too."),
                   (kl.sum() / n, "Average the KL over the batch, do not sum it.")],
            "loss": [(kl_weight * recon + kl_el, "beta (kl_weight) multiplies the KL term, not the reconstruction: "
                                                 "loss = recon + kl_weight * kl."),
                     (recon - kl_weight * kl_el, "Add the KL term, do not subtract it: loss = recon + kl_weight * kl."),
                     (recon + kl_el, "Multiply the KL term by kl_weight: loss = recon + kl_weight * kl."),
                     (recon + 1e-3 * kl_el, "Use the kl_weight argument, not a fixed 1e-3."),
                     (recon, "Add the weighted KL term: loss = recon + kl_weight * kl.")]}


def _check_loss(loss_fn: Callable) -> str:
    """``loss_fn``'s three parts against ``vae_loss`` on 8 shapes, an untrained SHORT_VAE and generator seed 0."""
    with torch.random.fork_rng(devices=[]):  # the learner's global generator is left alone
        torch.manual_seed(0)
        model = VAE(SHORT_VAE)
    x = _outcome_data()[0][:8]  # (8, 3, 32, 32)
    for kl_weight in (1e-3, 0.5):
        expected = vae_loss(model, x, kl_weight=kl_weight, generator=torch.Generator().manual_seed(0))
        got = call_learner(loss_fn, model, x, kl_weight=kl_weight, generator=torch.Generator().manual_seed(0))
        if got is None:
            raise Miss("vae_training_loss returned None: did you forget `return`?")
        if not isinstance(got, dict) or set(LOSS_PARTS) - set(got):
            raise Miss("Return a dict {'loss': ..., 'recon': ..., 'kl': ...} as the package's vae_loss does: the "
                       f"training loop optimises 'loss' and logs the other two (got {type(got).__name__}).")
        if not all(isinstance(got[k], torch.Tensor) and got[k].numel() == 1 for k in LOSS_PARTS):
            raise Miss("Each part must be a one-number tensor (no .item()): the loop backpropagates 'loss' and logs "
                       "the others.")
        if not got["loss"].requires_grad:
            raise Miss("'loss' carries no gradient: drop any .detach(), .item() or torch.no_grad() on the way.")
        slips = _loss_slips(model, x, kl_weight)
        hints = {"recon": "recon = F.mse_loss(model.decode(z), x) with z = sample_latent(mean, logvar, generator).",
                 "kl": "kl = kl_to_standard_normal(mean, logvar).mean() / (latent numbers per image).",
                 "loss": "loss = recon + kl_weight * kl."}
        for part in ("recon", "kl", "loss"):
            _expect(got[part].detach().reshape(()), expected[part].detach(), f"'{part}' (kl_weight {kl_weight:g})",
                    slips[part], hints[part], atol=1e-6, rtol=1e-4)
    return "the loss equals the package's"


def _check_outcome(loss_fn: Callable, steps: int, min_psnr: float) -> str:
    """Train ``SHORT_VAE`` with ``loss_fn`` (each call under the time limit) and grade its held-out PSNR."""
    psnr = _psnr_after(lambda *args, **kwargs: call_learner(loss_fn, *args, **kwargs), steps)
    figures = (f"the package's loss reaches {_package_psnr(steps):.1f} dB on the same budget; drawing every shape as "
               f"the average image, {_average_image_psnr():.1f} dB")
    if not (math.isfinite(psnr) and psnr >= min_psnr):
        raise Miss(f"Trained with your loss for {steps} steps, the VAE reconstructs held-out shapes at {psnr:.1f} dB "
                   f"PSNR, below the {min_psnr:g} dB required ({figures}). Your loss has the package's value on one "
                   "batch, so something stops its gradient: a .detach(), .item() or torch.no_grad() between the "
                   "encoder and the loss (on z, say) leaves the encoder untrained.")
    return f"trained with your loss for {steps} steps, the VAE reconstructs held-out shapes at {psnr:.1f} dB PSNR " \
           f"(required: {min_psnr:g} dB; {figures})"


def check_vae_build(sample_latent: Callable, kl_to_standard_normal: Callable, vae_training_loss: Callable,
                    steps: int = SHORT_RUN["steps"], min_psnr: float = MIN_PSNR_DB) -> CheckResult:
    """Grade the build (see ``VAE_BUILD``): unit stages for each function, then a short training run.

    ``steps`` and ``min_psnr``: a smaller run for tests (the package's loss reaches 12.2 dB in 60 steps).
    """
    return grade_build(VAE_BUILD, lambda: _check_sample_latent(sample_latent), lambda: _check_kl(kl_to_standard_normal),
                       lambda: _check_loss(vae_training_loss),
                       lambda: _check_outcome(vae_training_loss, steps, min_psnr))


# --- Exercise 1: the scale factor -------------------------------------------------------------


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
    return check_cases("Exercise 1 (the latent scale factor)", fn, _scale_cases(), atol=1e-4, rtol=1e-3,
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
