"""Checkers for notebook 01, the naive method: gradient ascent on a CLIP score from random pixels.

Exercises: one plain gradient-ascent step on the pixels, the RMS distance to the nearest real
image, and the 8x8 "lowres" prior; plus questions on what the fooled CLIP means and on why a
hand-made prior is not the answer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ...data import make_shapes
from ...models.clip import CLIPScorer, TinyCLIP
from ...metrics.distances import nearest_data_distance
from ..pixel_search import gradient_ascent_step, lowres_image
from .core import CheckResult, ask_choice, check_cases

PROMPT = "a red circle on a blue background"


def _random_scorer(seed: int = 0) -> CLIPScorer:
    """An untrained TinyCLIP: cheap, and the same network on every machine (its init is seeded)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIPScorer(TinyCLIP())


def _uniform(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- Exercise 1: one step of gradient ascent ----------------------------------------------------

def check_ascent_step(fn: Callable) -> CheckResult:
    """``fn(scorer, prompt, x, lr) -> (B, 3, 32, 32)``: ``clamp(x + lr * d(sum of scores)/dx, -1, 1)``."""
    scorer = _random_scorer()
    cases = []
    for batch, lr, seed in ((4, 0.5, 1), (2, 0.05, 2), (1, 1.0, 3)):
        x = _uniform((batch, 3, 32, 32), seed)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(scorer.score(xg, PROMPT).sum(), xg)
        slips = [((x - lr * grad).clamp(-1, 1), "The score went down: that is gradient descent. Ascent ADDS lr * grad."),
                 (x + lr * grad, "Some pixels left [-1, 1]: clamp the result back into the valid range."),
                 ((x + lr * grad / batch).clamp(-1, 1),
                  "Your step is B times too small: take the gradient of scores.sum(), not scores.mean(), "
                  "so each image moves by its own score's full gradient.")]
        cases.append(((scorer, PROMPT, x.clone(), lr), gradient_ascent_step(scorer, PROMPT, x, lr), slips))
    return check_cases("Exercise 1 (one step of gradient ascent)", lambda s, p, x, lr: fn(s, p, x.clone(), lr),
                       cases, atol=1e-4, rtol=1e-4,
                       hint="Make x a leaf that requires grad, score it, take torch.autograd.grad of the summed "
                            "scores with respect to x, then return (x + lr * grad).clamp(-1, 1).")


# --- Exercise 2: distance to the nearest real image ---------------------------------------------

def _distance_cases():
    data = make_shapes(64, seed=11).images  # (64, 3, 32, 32)
    queries = [torch.cat([make_shapes(3, seed=12).images, _uniform((2, 3, 32, 32), 5)]),  # (5, 3, 32, 32)
               data[:2] + 0.1 * torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))]
    cases = []
    for q in queries:
        sq = ((q[:, None] - data[None]) ** 2).flatten(2)  # (B, N, D)
        slips = [(sq.mean(2).min(1).values, "That is the mean squared distance: take its square root (RMS)."),
                 (sq.sum(2).min(1).values.sqrt(),
                  "That is the Euclidean norm: divide the SUM of squares by the number of pixel values "
                  "C*H*W (a mean) before the square root, so the figure is in pixel units."),
                 (sq.mean(2).sqrt().mean(1), "You averaged over the data: keep only the NEAREST real image (min).")]
        cases.append(((q, data), nearest_data_distance(q, data), slips))
    return cases


def check_nearest_distance(fn: Callable) -> CheckResult:
    """``fn(images (B, C, H, W), data (N, C, H, W)) -> (B,)``: RMS pixel distance to the nearest data image."""
    return check_cases("Exercise 2 (distance to the nearest real image)", fn, _distance_cases(), atol=1e-4, rtol=1e-4,
                       hint="For each image: the mean over C*H*W of the squared difference to every data image, "
                            "the smallest of those, then its square root.")


# --- Exercise 3: the 8x8 prior -----------------------------------------------------------------

def check_lowres_image(fn: Callable) -> CheckResult:
    """``fn(w (B, 3, 8, 8)) -> (B, 3, 32, 32)``: bilinear upsampling (align_corners=False) of ``tanh(w)``."""
    cases = []
    for batch, seed in ((2, 7), (3, 8)):
        w = 2 * torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        up = dict(size=(32, 32), mode="bilinear")
        slips = [(F.interpolate(torch.tanh(w), size=(32, 32), mode="nearest"),
                  "That is nearest-neighbour upsampling (4x4 blocks): use mode='bilinear'."),
                 (F.interpolate(w, **up, align_corners=False),
                  "Values leave [-1, 1]: squash w with torch.tanh before upsampling."),
                 (torch.tanh(F.interpolate(w, **up, align_corners=False)),
                  "Squash first, then upsample: tanh(w), then F.interpolate."),
                 (F.interpolate(torch.tanh(w), **up, align_corners=True),
                  "Use align_corners=False (pixel centres, the default in the package).")]
        cases.append(((w.clone(),), lowres_image(w), slips))
    return check_cases("Exercise 3 (the 8x8 prior)", fn, cases, atol=1e-5, rtol=1e-5,
                       hint="return F.interpolate(torch.tanh(w), size=(32, 32), mode='bilinear', "
                            "align_corners=False).")


# --- Questions ---------------------------------------------------------------------------------

def fooled_question():
    right = "The optimizer found pixels that push CLIP's features onto the prompt's, without drawing the scene"
    return ask_choice(
        "Question (who is right?)",
        "The tiny CLIP reads the prompt in the optimized noise; the shapes judge does not. What happened?",
        options=["The judge is too strict: CLIP is the better reader",
                 right,
                 "The image does contain a red circle, too faint to see",
                 "The score is higher than real images', so the image is better than real ones"],
        answer=right,
        hints={"The judge is too strict: CLIP is the better reader":
                   "Both read real images correctly. Only one of them was optimized against.",
               "The image does contain a red circle, too faint to see":
                   "Then a light blur would not break CLIP's reading. What happened to the score after the blur?",
               "The score is higher than real images', so the image is better than real ones":
                   "A score measures agreement with one network. Would a person call these images better?"},
        explanation="These are adversarial examples: pixel patterns that move a network's output where we ask, "
                    "while meaning nothing to a person. Gradient ascent finds them because it asks the network, "
                    "not the data, what to change.")


def prior_question():
    right = "It removes some wrong images but does not say what real ones look like, and for photos nobody can write that down"
    return ask_choice(
        "Question (why is a hand-made prior not the answer?)",
        "A blur or an 8x8 grid made the judge read the prompt far more often. Why is a hand-made prior still "
        "not the answer?",
        options=["It is the answer: smoothness is all a generator needs",
                 "More steps would turn the blobs into circles",
                 right,
                 "An 8x8 grid cannot draw a circle"],
        answer=right,
        hints={"It is the answer: smoothness is all a generator needs":
                   "Look at the distance column: several times that of real images. Would you call the blobs shapes?",
               "More steps would turn the blobs into circles":
                   "The score is already near its ceiling of 100: nothing in it pulls towards a cleaner circle.",
               "An 8x8 grid cannot draw a circle":
                   "The real images squeezed through the same grid are clean circles, close to the data. The "
                   "search did not find them."},
        explanation="A prior written by hand captures one or two facts about images. A diffusion model learns the "
                    "whole prior from the data instead, which is the subject of the rest of the course.")
