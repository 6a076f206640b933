"""Checkers for notebook 08, flow matching.

Exercises: the straight path ``interpolate``, the flow-matching loss with its noise and sigma
given, one Euler step of the flow ODE, and the ``straightness`` of a sampled path; plus questions
on where one Euler step lands and on why reflow straightens the paths.

The build (``FLOW_BUILD``, ``check_flow_build``): a flow-matching training step and an Euler
sampler, graded by what the network sees, by exact ODE endpoints, then by training a ``ToyMLP``
with them on the 8 Gaussians and measuring the samples' sliced Wasserstein distance to held-out
points. ``package_flow_train_step`` and ``package_euler_sample`` are the package's versions, which
the notebook uses until the build is correct.
"""

from __future__ import annotations

from collections.abc import Callable

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

from ... import flow_matching as fm
from ...data import make_toy2d
from ...metrics.distances import sliced_wasserstein, straightness
from ...models.mlp import ToyMLP
from ...samplers import FlowMatchEulerSampler, sample_loop
from .core import BuildExercise, CheckResult, Miss, ask_choice, call_learner, check_cases, expect_close, expect_seeded, grade_build

_BATCH_HINT = ("sigma holds one number per example, shape (B,), while x0 is (B, ...): give it the sample's "
               "other axes, e.g. sigma.view(-1, *[1] * (x0.ndim - 1)), so each example gets its own sigma.")


def _batch_hint(fn: Callable) -> Callable:
    """``fn`` with a shape error explained: a per-example sigma needs the sample's other axes."""

    def wrapped(*args):
        try:
            return fn(*args)
        except RuntimeError as err:
            if "must match the size" in str(err) or "cannot be broadcast" in str(err):
                raise RuntimeError(f"{err}. {_BATCH_HINT}") from err
            raise  # NotImplementedError (a RuntimeError) included: it means "not attempted"

    return wrapped


def _col(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.view(-1, *[1] * (x.ndim - 1))  # (B, 1, ...)


def _pairs(seed: int):
    """``(x0, eps, sigma)`` cases; B differs from every other axis except in the last, square case."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for shape in ((3, 2), (2, 1, 4, 4), (4, 4)):
        x0, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        out.append((x0, eps, torch.rand(shape[0], generator=g)))
    return out


# --- Exercise 1: the straight path ------------------------------------------------------------------


def check_interpolate(fn: Callable) -> CheckResult:
    """``fn(x0, eps, sigma)``: ``(B, ...)``, ``(B, ...)``, ``(B,)`` -> ``(1 - sigma) x0 + sigma eps``."""
    cases = []
    for x0, eps, sigma in _pairs(0):
        s = _col(sigma, x0)
        slips = [((1 - s) * eps + s * x0, "The convention is reversed: sigma = 0 is data and sigma = 1 is noise, so "
                                          "x0 gets the weight (1 - sigma) and eps the weight sigma."),
                 ((1 - s).sqrt() * x0 + s.sqrt() * eps, "No square roots: those give DDPM's curved path. Flow "
                                                         "matching mixes x0 and eps linearly in sigma."),
                 (x0 + s * eps, "The data must fade out as the noise comes in: weight x0 by (1 - sigma).")]
        if x0.shape[-1] == len(sigma):  # the square case: a sigma left as (B,) broadcasts along the last axis
            slips.append(((1 - sigma) * x0 + sigma * eps, _BATCH_HINT + " Yours matched sigma with the LAST axis."))
        cases.append(((x0.clone(), eps.clone(), sigma.clone()), fm.interpolate(x0, eps, sigma), slips))
    return check_cases("Exercise 1 (the straight path)", _batch_hint(fn), cases, atol=1e-6, rtol=1e-6,
                       hint="x_sigma = (1 - sigma) * x0 + sigma * eps, with sigma shaped (B, 1, ...).")


# --- Exercise 2: the loss ---------------------------------------------------------------------------


class _FixedVelocityNet(torch.nn.Module):
    """A small fixed network ``(B, ...)``, timestep ``(B,)`` -> ``(B, ...)`` that depends on both,
    so a wrong timestep scale or a wrong input shows in the loss."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a, self.b = torch.randn(1, generator=g), torch.randn(1, generator=g)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=x.dtype).reshape(-1)
        t = t.expand(x.shape[0]) if t.numel() == 1 else t
        return torch.tanh(self.a * x) + _col(t / 1000.0, x) * self.b * x.roll(1, dims=-1)


def check_flow_loss(fn: Callable) -> CheckResult:
    """``fn(model, x0, eps, sigma)`` -> the scalar ``mean (model(x_sigma, 1000 sigma) - (eps - x0))^2``."""
    model = _FixedVelocityNet()
    cases = []
    for x0, eps, sigma in _pairs(1):
        s = _col(sigma, x0)
        x, x_rev = (1 - s) * x0 + s * eps, (1 - s) * eps + s * x0
        target = eps - x0

        def mse(pred, tgt):
            return F.mse_loss(pred, tgt)

        slips = [(mse(model(x, sigma * 1000), x0 - eps), "The velocity is d x_sigma / d sigma = eps - x0 (towards "
                                                         "the noise, as sigma grows); you used x0 - eps."),
                 (mse(model(x, sigma), target), "The network sees the timestep sigma * 1000, the scale its "
                                                "timestep embedding was built for; you passed sigma itself."),
                 (mse(model(x, (1 - sigma) * 1000), target), "The timestep is sigma * 1000 (sigma = 1 is noise, "
                                                              "as timestep 1000 is in DDPM), not (1 - sigma) * 1000."),
                 (mse(model(x_rev, sigma * 1000), target), "x_sigma is (1 - sigma) x0 + sigma eps: sigma = 1 is "
                                                           "noise. Your interpolation is reversed."),
                 (mse(model(x, sigma * 1000), eps), "The target is the velocity eps - x0, not the noise eps: "
                                                    "that is DDPM's target."),
                 (((model(x, sigma * 1000) - target) ** 2).sum(), "Take the mean of the squared error, not the sum.")]
        with torch.no_grad():
            cases.append(((model, x0.clone(), eps.clone(), sigma.clone()),
                          mse(model(fm.interpolate(x0, eps, sigma), sigma * 1000), fm.velocity_target(x0, eps)),
                          slips))
    return check_cases("Exercise 2 (the flow-matching loss)", _batch_hint(fn), cases, atol=1e-6, rtol=1e-5,
                       hint="loss = mean((model(x_sigma, sigma * 1000) - (eps - x0)) ** 2).")


# --- Exercise 3: one Euler step -----------------------------------------------------------------------


def check_euler_step(fn: Callable) -> CheckResult:
    """``fn(x, v, sigma, sigma_next)`` -> ``x + (sigma_next - sigma) v``, with ``sigma > sigma_next`` numbers."""
    g = torch.Generator().manual_seed(2)
    cases = []
    for shape, sigma, sigma_next in (((3, 2), 1.0, 0.75), ((2, 1, 4, 4), 0.6, 0.2), ((5, 2), 0.25, 0.0)):
        x, v = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        slips = [(x + (sigma - sigma_next) * v, "Wrong sign: sampling walks sigma DOWN, so sigma_next - sigma is "
                                                "negative and the step moves against v (v points towards the noise)."),
                 (x - sigma * v, "That is the jump all the way to sigma = 0 (the x0 prediction), not one step to "
                                 "sigma_next."),
                 (x - sigma_next * v, "The step size is the change in sigma, sigma_next - sigma.")]
        cases.append(((x.clone(), v.clone(), sigma, sigma_next), x + (sigma_next - sigma) * v, slips))
    return check_cases("Exercise 3 (one Euler step)", fn, cases, atol=1e-6, rtol=1e-6,
                       hint="x_next = x + (sigma_next - sigma) * v.")


# --- Exercise 4: straightness -------------------------------------------------------------------------


def check_straightness(fn: Callable) -> CheckResult:
    """``fn(trajectory)``: ``(K + 1, B, ...)`` -> ``(B,)`` chord / length, as ``metrics.distances.straightness``."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for shape in ((6, 3, 2), (4, 2, 1, 3, 3), (9, 5, 2)):
        traj = torch.randn(shape, generator=g).cumsum(0)  # (K + 1, B, ...) a random walk per sample
        flat = traj.flatten(2)
        chord = (flat[-1] - flat[0]).norm(dim=-1)
        seg = (flat[1:] - flat[:-1]).norm(dim=-1)  # (K, B)
        slips = [(seg.sum(0) / chord, "Upside down: the straight-line distance (chord) goes on top, so a straight "
                                      "path gives 1 and a bent one less."),
                 (chord / (flat[1:] - flat[0]).norm(dim=-1).sum(0), "The length is the sum of the steps "
                                                                    "|x_{k+1} - x_k|, not of distances from the start."),
                 (chord / seg.pow(2).sum(0), "Add the lengths |x_{k+1} - x_k| of the steps, not their squares."),
                 (chord / seg.sum(0).mean(), "Divide each sample's chord by its own length, not by the batch mean.")]
        cases.append(((traj.clone(),), straightness(traj), slips))
    return check_cases("Exercise 4 (straightness)", fn, cases, atol=1e-5, rtol=1e-5,
                       hint="Flatten each point to a vector; chord = |x_K - x_0|; length = sum_k |x_{k+1} - x_k|; "
                            "return chord / length, one number per sample.")


# --- Build: a flow from scratch ------------------------------------------------------------------------

BUILD_STEPS = 500  # training steps of the outcome stage: under 1 s on one idle core
BUILD_BATCH, BUILD_LR = 256, 2e-3  # the notebook's toy batch and learning rate (Adam, no warm-up, no EMA)
BUILD_SAMPLE_STEPS = 20  # Euler steps of the outcome stage
BUILD_N = 2000  # samples drawn, and held-out points they are compared with
BUILD_THRESHOLD = 0.2  # sliced Wasserstein: the solution reaches 0.10 to 0.13 from 300 steps on, the noise 0.50
_T = fm.NUM_TRAIN_TIMESTEPS

FLOW_BUILD = BuildExercise(
    "Build (a flow from scratch)",
    "my_flow_train_step(model, optimizer, x0, generator), one step of flow-matching training on a batch of "
    "points, and my_euler_sample(model, noise, steps), Euler's method from sigma = 1 (noise) down to 0 (data).",
    graded_on=(
        "the step's draws: sigma ~ U[0, 1), one per point, then the noise eps ~ N(0, I), both from the generator "
        "you are given (the same seed must give the same draws, another seed other draws)",
        "what the network sees and the loss: x_sigma = (1 - sigma) x0 + sigma eps and the timestep 1000 sigma equal "
        "the package's for the same draws, and the step returns mean((v - (eps - x0))^2)",
        "the sampler: N network calls at sigma = 1, 1 - 1/N, ..., 1/N (timestep 1000 sigma), and the exact Euler "
        "endpoints for a constant, a linear and a time-dependent velocity field",
        f"the outcome: a ToyMLP trained with your step for {BUILD_STEPS:,} steps (batch {BUILD_BATCH}, Adam, lr "
        f"{BUILD_LR:g}) on the 8 Gaussians and sampled with your sampler in {BUILD_SAMPLE_STEPS} steps must come "
        f"within a sliced Wasserstein distance of {BUILD_THRESHOLD} of {BUILD_N:,} held-out points (printed next to "
        "the package's training and sampler on the same budget, and to the noise's own distance)",
    ))


def package_flow_train_step(model, optimizer, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One step with the package's ``flow_matching.flow_matching_loss`` (it draws sigma, then the noise,
    from ``generator``): ``x0 (B, D)`` -> the loss, a 0-d tensor."""
    loss = fm.flow_matching_loss(model, x0, generator)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def package_euler_sample(model, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """``samplers.FlowMatchEulerSampler`` from ``noise (B, D)`` at sigma = 1: ``(B, D)`` samples. Its grid is
    diffusers' (sigma from 1 to 1/1000 in ``steps`` levels, then 0), a little off the build's even one."""
    return sample_loop(model, FlowMatchEulerSampler(), tuple(noise.shape), steps, device=noise.device, latents=noise)


_NO_T = ("The network was called without its timestep: call model(x, 1000 * sigma). Without it the network cannot "
         "tell how far along the path x lies, and can only learn one average velocity for every sigma.")


def _timesteps(t, x: torch.Tensor) -> torch.Tensor:
    """The timestep a learner passed with ``x (B, D)``, as ``(B,)``; ``Miss`` when there is none or it is misshapen."""
    if t is None:
        raise Miss(_NO_T)
    t = torch.as_tensor(t, device=x.device)
    if t.numel() == 1:
        t = t.reshape(()).expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise Miss(f"The timestep should be one number per point, shape ({x.shape[0]},), or a single number; "
                   f"got shape {tuple(t.shape)}.")
    return t


class _SpyVelocityNet(nn.Module):
    """``v(x, t) = tanh(x W) + (t / 1000) b`` on ``(B, 2)`` points, with weights to train, recording each
    call's ``(input, timestep, output)`` so a checker sees what a training step fed it."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(2, 2, generator=g))
        self.b = nn.Parameter(torch.randn(2, generator=g))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, t=None) -> torch.Tensor:
        t = _timesteps(t, x)  # (B,)
        out = torch.tanh(x @ self.w) + (t.to(x.dtype) / _T)[:, None] * self.b  # (B, 2)
        self.calls.append((x.detach().clone(), t.detach().clone(), out.detach().clone()))
        return out


def _step_batch() -> torch.Tensor:
    """``(5, 2)`` points: 5 rows, so a sigma of shape (B,) that is not given a column axis fails loudly."""
    return 2 * torch.randn(5, 2, generator=torch.Generator().manual_seed(7))


def _draws(seed: int, x0: torch.Tensor, sigma_first: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigma (B,), noise (B, D))`` as a step draws them from ``Generator().manual_seed(seed)``."""
    g = torch.Generator().manual_seed(seed)
    if sigma_first:  # the package's order (flow_matching_loss)
        sigma = torch.rand(x0.shape[0], generator=g, dtype=x0.dtype)
        return sigma, torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    return torch.rand(x0.shape[0], generator=g, dtype=x0.dtype), noise


def _spy_step(train_step: Callable, x0: torch.Tensor, generator: torch.Generator):
    """The learner's step on a fresh spy network: ``(what it returned, the network's calls)``."""
    net = _SpyVelocityNet()
    loss = _batch_hint(train_step)(net, torch.optim.SGD(net.parameters(), lr=0.1), x0.clone(), generator)
    return loss, net.calls


def _loss_value(loss) -> torch.Tensor:
    """The loss a step returned, as a 0-d float64 tensor; ``Miss`` for None or anything but one number."""
    if loss is None:
        raise Miss("Your step returned None: did you forget `return loss.detach()` (or `loss.item()`)?")
    try:
        value = torch.as_tensor(loss.detach() if isinstance(loss, torch.Tensor) else loss, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Miss(f"Your step should return the loss, a number; it returned {type(loss).__name__}.") from None
    if value.numel() != 1:
        raise Miss(f"Your step should return the loss, one number (the mean over the batch); it returned shape "
                   f"{tuple(value.shape)}.")
    return value.reshape(())


def _one_call(train_step: Callable, x0: torch.Tensor, seed: int):
    """The learner's step with ``seed``: ``(loss, x_in, t, out)`` of its single network call."""
    loss, calls = _spy_step(train_step, x0, torch.Generator().manual_seed(seed))
    value = _loss_value(loss)
    if not calls:
        raise Miss("Your step never called the network: compute v = model(x_sigma, 1000 * sigma).")
    if len(calls) > 1:
        raise Miss(f"Your step called the network {len(calls)} times: once is enough, on the whole batch.")
    return (value, *calls[0])


def _stage_draws(train_step: Callable) -> None:
    x0 = _step_batch()
    _, _, t, _ = call_learner(_one_call, train_step, x0, 0)
    if not t.is_floating_point() or torch.equal(t, t.round()):
        raise Miss("Your timesteps are whole numbers: sigma is continuous, sigma = torch.rand(B, generator=generator) "
                   "in [0, 1), and the network sees 1000 * sigma (not an integer DDPM step from torch.randint).")
    if torch.unique(t).numel() == 1:
        raise Miss("Every point got the same sigma: draw one per point, torch.rand(B, generator=generator).")
    expect_seeded(lambda g: torch.cat([c.flatten().double() for c in _one_call(train_step, x0, g.initial_seed())[1:3]]),
                  "draw of sigma and noise")


def _stage_step_values(train_step: Callable) -> str:
    x0 = _step_batch()
    loss, x_in, t, out = call_learner(_one_call, train_step, x0, 0)
    sigma, noise = _draws(0, x0)
    s = sigma[:, None]  # (B, 1)
    t_slips = [(sigma, "The network sees the timestep 1000 * sigma, the scale its timestep embedding was built for; "
                       "you passed sigma itself."),
               (_T * (1 - sigma), "Your sigma is on the wrong end: sigma = 1 is noise and sigma = 0 is data, so the "
                                  "timestep is 1000 * sigma, not 1000 * (1 - sigma)."),
               (_T * _draws(0, x0, sigma_first=False)[0], "Draw sigma first and the noise second, as the package's "
                                                          "flow_matching_loss does, so the checker can replay them.")]
    expect_close(t.double(), _T * sigma.double(), "The timestep your step passed",
                 _match(t, t_slips) or "It should be 1000 * sigma with sigma = torch.rand(B, generator=generator), "
                                       "drawn before the noise.", atol=1e-3, rtol=1e-5)
    x_slips = [(s * x0 + (1 - s) * noise, "Your interpolation has sigma on the wrong end: sigma = 0 is data and "
                                          "sigma = 1 is noise, so x_sigma = (1 - sigma) * x0 + sigma * eps."),
               ((1 - s).sqrt() * x0 + s.sqrt() * noise, "No square roots: those give DDPM's curved path; flow "
                                                        "matching mixes x0 and eps linearly in sigma."),
               (x0 + s * noise, "The data must fade out as the noise comes in: weight x0 by (1 - sigma).")]
    expect_close(x_in, fm.interpolate(x0, noise, sigma), "The x_sigma your step fed the network",
                 _match(x_in, x_slips) or "x_sigma = (1 - sigma) * x0 + sigma * eps, with sigma shaped (B, 1).")
    target = fm.velocity_target(x0, noise)  # eps - x0
    loss_slips = [(F.mse_loss(out, -target), "The velocity target has its sign flipped: d x_sigma / d sigma = eps - "
                                             "x0 (it points towards the noise as sigma grows); you used x0 - eps."),
                  (F.mse_loss(out, noise), "The target is the velocity eps - x0, not the noise eps (DDPM's target)."),
                  (((out - target) ** 2).sum(), "Take the mean of the squared error, not the sum.")]
    expect_close(loss, F.mse_loss(out, target).double(), "The loss your step returned",
                 _match(loss, loss_slips) or "loss = mean((model(x_sigma, 1000 * sigma) - (eps - x0)) ** 2).")
    return "training step: draws, x_sigma, timestep and loss as the package's"


def _match(got: torch.Tensor, slips) -> str | None:
    """The hint of the first slip whose value ``got`` matches."""
    for value, hint in slips:
        if got.shape == value.shape and torch.allclose(got.double(), value.double(), rtol=1e-5, atol=1e-5):
            return hint
    return None


class _Field(nn.Module):
    """A known velocity field ``velocity(x, sigma)`` posing as a network ``model(x, 1000 sigma)``;
    it records the sigma of every call."""

    def __init__(self, velocity: Callable):
        super().__init__()
        self.velocity, self.sigmas = velocity, []

    def forward(self, x: torch.Tensor, t=None) -> torch.Tensor:
        t = _timesteps(t, x).double()  # (B,)
        if not torch.all(t == t[0]):
            raise Miss("At each Euler step every point is at the same sigma: pass one timestep for the batch.")
        self.sigmas.append(float(t[0]) / _T)
        return self.velocity(x, (t / _T).to(x.dtype)[:, None])  # (B, D)


def _check_grid(sigmas: list[float], n: int) -> None:
    """``Miss`` unless the sampler called the network at sigma = 1 - k/n, k = 0..n-1, in that order."""
    if not sigmas:
        raise Miss("Your sampler never called the network: each step needs v = model(x, 1000 * sigma).")
    if len(sigmas) != n:
        extra = " (no call at sigma = 0 is needed: that is where it stops)" if len(sigmas) == n + 1 else ""
        raise Miss(f"{n} steps are {n} network calls, at sigma = 1, 1 - 1/N, ..., 1/N; yours made "
                   f"{len(sigmas)}{extra}.")
    got = torch.tensor(sigmas, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    slips = [(k / n, "Time runs the wrong way: start from the noise at sigma = 1 and walk DOWN to 0 (data)."),
             ((k + 1) / n, "Time runs the wrong way: start from the noise at sigma = 1 and walk DOWN to 0 (data)."),
             (1 - (k + 1) / n, "Evaluate the velocity at the start of each step, sigma_k, not at its end."),
             ((1 - k / n) / _T, "The network sees the timestep 1000 * sigma, not sigma itself.")]
    expect_close(got, 1 - k / n, "The grid of sigmas your sampler called the network at",
                 _match(got, slips) or "Use the even grid sigma_k = 1 - k/N, k = 0..N-1, with timestep 1000 * sigma_k.",
                 atol=1e-4)


def _stage_euler(euler_sample: Callable) -> str:
    g = torch.Generator().manual_seed(4)
    noise, c = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)  # (3, 2) each
    cases = [  # (field, steps, the exact Euler endpoint, what the same walk with dt's sign flipped gives)
        (lambda x, s: c.expand_as(x), 4, noise - c, noise + c),  # v = c: x_0 = x_1 - c at any step count
        (lambda x, s: x, 3, noise * (1 - 1 / 3) ** 3, noise * (1 + 1 / 3) ** 3),  # v = x: x (1 - 1/N)^N
        (lambda x, s: x, 10, noise * 0.9 ** 10, noise * 1.1 ** 10),
        # v = sigma: x_0 = x_1 - (1/N) sum_k (1 - k/N) = x_1 - (N + 1) / (2N) = x_1 - 0.6 for N = 5
        (lambda x, s: s.expand_as(x), 5, noise - 0.6, noise + 0.6),
    ]
    for velocity, n, exact, flipped in cases:
        field, start = _Field(velocity), noise.clone()
        with torch.no_grad():
            x = call_learner(euler_sample, field, start, n)
        _check_grid(field.sigmas, n)
        if not torch.equal(start, noise):
            raise Miss("Your sampler changed the noise it was given in place (x += ...): start from x = noise.clone(), "
                       "the caller still needs its noise (reflow pairs it with the sample).")
        expect_close(x, exact, f"Your sampler's endpoint for a known field in {n} steps",
                     _match(x, [(flipped, "dt has the wrong sign: sigma goes down, so each step adds "
                                          "(sigma_next - sigma) * v = -(1/N) * v.")])
                     or "Each step is x = x + (sigma_next - sigma) * model(x, 1000 * sigma); return x at sigma = 0.")
    return "sampler: exact on a constant, a linear and a time-dependent field"


def _fresh_toy_mlp(seed: int = 0) -> ToyMLP:
    """The notebook's ``ToyMLP``, initialised from ``seed`` without touching torch's global generator."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ToyMLP()


@functools.lru_cache(maxsize=2)
def _toy_sets(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's 8 Gaussians: ``(4000, 2)`` training points (seed 0) and ``(n, 2)`` held out (seed 1)."""
    return make_toy2d("gaussian_mixture", 4000, seed=0), make_toy2d("gaussian_mixture", n, seed=1)


def _outcome_noise(n: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(2))  # (n, 2)


def train_toy_flow(train_step: Callable, data: torch.Tensor, steps: int = BUILD_STEPS, seed: int = 0) -> ToyMLP:
    """A fresh ``ToyMLP`` (seed ``seed``) trained by ``train_step(model, optimizer, x0, generator)`` for
    ``steps`` batches of ``BUILD_BATCH`` points of ``data (N, 2)``, Adam at ``BUILD_LR``; returned in eval mode."""
    model = _fresh_toy_mlp(seed)
    return _train(train_step, model, data, steps, seed)


def _train(train_step: Callable, model: nn.Module, data: torch.Tensor, steps: int, seed: int = 0) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), lr=BUILD_LR)
    batches, draws = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (BUILD_BATCH,), generator=batches)  # (batch,)
        train_step(model, optimizer, data[idx], draws)
    return model.eval()


@functools.lru_cache(maxsize=4)
def _package_outcome(steps: int, sample_steps: int, n: int) -> float:
    """The sliced Wasserstein distance the package's step and sampler reach on the outcome stage's budget."""
    data, held_out = _toy_sets(n)
    model = train_toy_flow(package_flow_train_step, data, steps)
    return sliced_wasserstein(package_euler_sample(model, _outcome_noise(n), sample_steps), held_out)


def _accumulates(train_step: Callable) -> bool:
    """Whether two calls of the learner's step leave the sum of both steps' gradients (no zero_grad)."""
    x0, net = _step_batch(), _SpyVelocityNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # the weights stay put, so the gradients add up exactly
    g = torch.Generator().manual_seed(0)
    call_learner(lambda: [train_step(net, optimizer, x0.clone(), g) for _ in range(2)])
    if any(p.grad is None for p in net.parameters()):
        return False
    g, grads = torch.Generator().manual_seed(0), []
    for _ in range(2):
        ref = _SpyVelocityNet()
        fm.flow_matching_loss(ref, x0, g).backward()
        grads.append([p.grad for p in ref.parameters()])
    return all(torch.allclose(p.grad, a + b, atol=1e-5) for p, a, b in zip(net.parameters(), *grads))


def _stage_outcome(train_step: Callable, euler_sample: Callable, steps: int, sample_steps: int, n: int,
                   threshold: float) -> str:
    data, held_out = _toy_sets(n)
    model = _fresh_toy_mlp()
    start = copy.deepcopy(model.state_dict())
    call_learner(_train, train_step, model, data, steps)
    noise = _outcome_noise(n)
    with torch.no_grad():
        x = call_learner(euler_sample, model, noise.clone(), sample_steps)
    if not isinstance(x, torch.Tensor) or x.shape != (n, 2):
        raise Miss(f"Your sampler should return the (B, 2) samples; it returned {getattr(x, 'shape', type(x))}.")
    if not torch.isfinite(x).all():
        raise Miss(f"Your trained flow's samples hold NaN or inf after {steps:,} steps: the training diverged. Check "
                   "the loss (a mean, not a sum) and the order zero_grad, backward, step.")
    sw = sliced_wasserstein(x, held_out)
    figures = (f"sliced Wasserstein {sw:.3f} to {n:,} held-out points (threshold {threshold:g}; the package's training "
               f"and sampler on the same budget: {_package_outcome(steps, sample_steps, n):.3f}; the noise itself: "
               f"{sliced_wasserstein(noise, held_out):.3f})")
    if sw <= threshold:
        return f"your flow after {steps:,} training and {sample_steps} Euler steps: {figures}"
    if all(torch.equal(p, start[k]) for k, p in model.state_dict().items()):
        why = ("Its weights never changed: each step must call optimizer.zero_grad(), loss.backward(), then "
               "optimizer.step(), in that order (zero_grad between backward and step wipes the gradients).")
    elif _accumulates(train_step):
        why = ("Your step keeps the gradients of all earlier steps: call optimizer.zero_grad() before "
               "loss.backward() in every step.")
    else:
        why = ("The unit stages passed, so look at what they do not see: zero_grad, backward and step in every "
               "training step, and the network's output flowing into the loss without .detach().")
    raise Miss(f"Your flow did not learn the data: {figures}. {why}")


def check_flow_build(train_step: Callable, euler_sample: Callable, steps: int = BUILD_STEPS,
                     sample_steps: int = BUILD_SAMPLE_STEPS, n: int = BUILD_N,
                     threshold: float = BUILD_THRESHOLD) -> CheckResult:
    """Grade ``train_step(model, optimizer, x0, generator)`` and ``euler_sample(model, noise, steps)`` as
    ``FLOW_BUILD`` says: the draws, what the network sees, exact Euler endpoints, then the outcome."""
    return grade_build(FLOW_BUILD,
                       lambda: _stage_draws(train_step),
                       lambda: _stage_step_values(train_step),
                       lambda: _stage_euler(euler_sample),
                       lambda: _stage_outcome(train_step, euler_sample, steps, sample_steps, n, threshold))


# --- Questions --------------------------------------------------------------------------------------

ONE_STEP_OPTIONS = [
    "near the data's mean: at sigma = 1 the best velocity is eps - E[x0], whatever the noise",
    "on the mode nearest to the noise: the velocity points at the closest data point",
    "exactly on the data: the paths are straight lines, so one Euler step is exact",
    "where it started: one step does not move the sample",
]


def one_step_question():
    return ask_choice(
        "Question A (one Euler step)",
        "A flow-matching model trained to perfection on the 8 Gaussians takes ONE Euler step, from sigma = 1 "
        "to 0: x0 = eps - v(eps, 1). Where do its samples land?",
        ONE_STEP_OPTIONS, ONE_STEP_OPTIONS[0],
        explanation="At sigma = 1 the input is pure noise and says nothing about which x0 it will be paired "
                    "with, so the best prediction of eps - x0 is eps - E[x0]; the step lands on E[x0], the "
                    "centre of the ring, for every noise. The grid above shows it.",
        hints={ONE_STEP_OPTIONS[1]: "What does the network know about x0 when its input is pure noise, "
                                    "independent of x0?",
               ONE_STEP_OPTIONS[2]: "Each training pair's path is straight, but the model learns the AVERAGE "
                                    "velocity over all pairs through a point, and those average directions bend.",
               ONE_STEP_OPTIONS[3]: "That is DDIM-1 with diffusers' default 'leading' spacing, which runs its one "
                                    "step at t = 0. The flow step goes from sigma = 1 all the way to 0."})


REFLOW_OPTIONS = [
    "its pairs come from one ODE, so their lines do not cross and each point has one direction",
    "it trains longer, and every flow becomes straighter with more training",
    "it samples with Heun's second-order method instead of Euler's",
    "it drops the noise: the new model maps data to data",
]


def reflow_question():
    return ask_choice(
        "Question B (why reflow straightens)",
        "Reflow trains a flow again on pairs (ODE endpoint, its noise) drawn from the first flow. Why are "
        "the new paths straighter?",
        REFLOW_OPTIONS, REFLOW_OPTIONS[0],
        explanation="With independent pairs, many straight lines pass through each point, heading to different "
                    "data; the model learns their average, and the averaged field bends. The ODE's pairs are "
                    "deterministic and its paths never cross, so the lines between them rarely cross either: "
                    "the average through a point is close to the one line that passes there, and the new "
                    "flow follows those lines (Liu et al. 2022, 'Flow straight and fast').",
        hints={REFLOW_OPTIONS[1]: "The first flow's paths stay bent however long it trains: the bend comes from "
                                  "averaging crossing lines, not from too little training.",
               REFLOW_OPTIONS[2]: "The notebook samples both flows with the same Euler sampler; only the training "
                                  "pairs changed.",
               REFLOW_OPTIONS[3]: "The pairs still join noise to data: (ODE endpoint, the noise it started from)."})


__all__ = ["BUILD_STEPS", "BUILD_THRESHOLD", "FLOW_BUILD", "ONE_STEP_OPTIONS", "REFLOW_OPTIONS", "check_euler_step",
           "check_flow_build", "check_flow_loss", "check_interpolate", "check_straightness", "one_step_question",
           "package_euler_sample", "package_flow_train_step", "reflow_question", "train_toy_flow"]
