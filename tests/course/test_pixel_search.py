"""course_utils.course.pixel_search: notebook 01's pixel search: the score climbs, parametrizations keep promises."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.course import pixel_search as ps
from course_utils.metrics import distances
from course_utils.models.clip import CLIPScorer, TinyCLIP

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def scorer():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return CLIPScorer(TinyCLIP())  # untrained: its score is still a differentiable function of the pixels


@pytest.mark.parametrize("name", ps.PARAMETRIZATIONS)
def test_score_rises(scorer, name):
    res = ps.optimize_pixels(scorer, PROMPT, n=2, steps=8, lr=0.05, parametrization=name,
                             generator=torch.Generator().manual_seed(0), record_every=3)
    assert res.scores.shape == (9, 2)  # steps + 1 rows: before every step and after the last
    assert (res.scores[-1] > res.scores[0] + 5).all()  # 100 * cosine rises by more than 0.05 in cosine
    assert res.snapshot_steps == [0, 3, 6, 8]  # every record_every steps, and the last
    assert res.snapshots.shape == (4, 2, 3, 32, 32)
    assert torch.equal(res.snapshots[-1], res.images)
    assert res.images.min() >= -1 and res.images.max() <= 1


def test_same_generator_same_search(scorer):
    run = lambda: ps.optimize_pixels(scorer, PROMPT, n=1, steps=3, generator=torch.Generator().manual_seed(4))  # noqa: E731
    assert torch.equal(run().images, run().images)


def test_scorer_weights_untouched(scorer):
    before = {k: v.clone() for k, v in scorer.model.state_dict().items()}
    ps.optimize_pixels(scorer, PROMPT, n=1, steps=3)
    assert all(torch.equal(before[k], v) for k, v in scorer.model.state_dict().items())
    assert all(p.grad is None for p in scorer.model.parameters())


def test_initial_pixels_are_uniform():
    x = torch.tanh(ps.initial_parameters("pixels", 64, torch.Generator().manual_seed(0)))  # (64, 3, 32, 32)
    # Uniform on [-0.98, 0.98]: mean 0, variance 0.98^2 / 3 = 0.3201; 196,608 draws give errors ~0.002.
    assert abs(float(x.mean())) < 0.01 and abs(float(x.var()) - 0.98**2 / 3) < 0.01
    assert float(x.abs().max()) <= 0.98 + 1e-6


@pytest.mark.parametrize("name, params", [("pixels", (3, 32, 32)), ("blur", (3, 32, 32)), ("lowres", (3, 8, 8))])
def test_parametrization_shape_and_range(name, params):
    assert ps.parameter_shape(name) == params
    w = 5 * torch.randn(2, *params, generator=torch.Generator().manual_seed(1))  # large w: tanh saturates
    x = ps.to_image(name, w)
    assert x.shape == (2, 3, 32, 32)
    assert x.min() >= -1 and x.max() <= 1


def test_lowres_has_8x8_degrees_of_freedom():
    # The map from 3*8*8 = 192 numbers to 3*32*32 = 3,072 pixels has a Jacobian of rank 192 (no less:
    # every grid value shows; no more: nothing else can), so the images form a 192-dimensional family.
    w = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(ps.lowres_image, w).reshape(3 * 32 * 32, 3 * 8 * 8)
    assert int(torch.linalg.matrix_rank(jac)) == 192
    # A constant grid gives a constant image (bilinear weights sum to 1).
    assert torch.allclose(ps.lowres_image(torch.full((1, 3, 8, 8), 0.3)), torch.full((1, 3, 32, 32), math.tanh(0.3)))


def test_blur_kernel_and_smoothing():
    k = ps.gaussian_kernel(1.5)
    assert k.shape == (11,)  # radius ceil(3 * 1.5) = 5
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-6) and torch.equal(k, k.flip(0)) and int(k.argmax()) == 5
    flat = ps.blur_image(torch.full((1, 3, 32, 32), -0.7))
    assert torch.allclose(flat, torch.full_like(flat, math.tanh(-0.7)), atol=1e-6)  # reflect padding keeps flat flat
    # White noise loses most of its variance: for a 1-D kernel sum(k^2) = 0.19, squared for 2-D: 0.035.
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ratio = float(ps.blur_image(noise).var() / torch.tanh(noise).var())
    assert ratio < 0.1
    with pytest.raises(ValueError, match="sigma"):
        ps.gaussian_kernel(0)


def test_blur_matrix_equals_reflect_padded_convolution():
    # The matrix form must be the textbook separable blur: pad by reflection, convolve rows, then columns.
    w = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    k = ps.gaussian_kernel(1.5)
    r, x = len(k) // 2, torch.tanh(w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    assert torch.allclose(ps.blur_image(w), x, atol=1e-6)
    with pytest.raises(ValueError, match="blur radius"):
        ps.blur_matrix(4)


def test_gradient_ascent_step_raises_the_score(scorer):
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    y = ps.gradient_ascent_step(scorer, PROMPT, x, lr=0.01)
    assert y.shape == x.shape and not y.requires_grad
    assert (scorer.score(y, PROMPT) > scorer.score(x, PROMPT)).all()
    assert ps.gradient_ascent_step(scorer, PROMPT, x, lr=100.0).abs().max() <= 1  # clamped


def test_bad_input(scorer):
    with pytest.raises(ValueError, match="'pixels', 'blur', 'lowres'"):
        ps.optimize_pixels(scorer, PROMPT, parametrization="fourier")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        ps.optimize_pixels(scorer, PROMPT, steps=0)
    with pytest.raises(TypeError, match="steps"):
        ps.optimize_pixels(scorer, PROMPT, steps=2.5)
    with pytest.raises(ValueError, match="lr must be positive"):
        ps.optimize_pixels(scorer, PROMPT, lr=-1)
    with pytest.raises(TypeError, match="one string"):
        ps.optimize_pixels(scorer, [PROMPT])
    with pytest.raises(TypeError, match="score"):
        ps.optimize_pixels(object(), PROMPT)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        ps.optimize_pixels(scorer, PROMPT, image_shape=(32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ps.lowres_image(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="same"):
        distances.nearest_data_distance(torch.zeros(2, 3, 32, 32), torch.zeros(5, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        distances.nearest_data_distance(torch.zeros(3, 32, 32), torch.zeros(5, 3, 32, 32))
    with pytest.raises(ValueError, match="smaller than"):
        distances.real_vs_real_distance(torch.zeros(5, 3, 32, 32), 5)


def test_real_clip_path_offline(small_hf_clip):
    # The notebook's optional real-CLIP cell, with a small random Hugging Face CLIP built from a config
    # (tests/conftest.py): 64x64 images, resized inside the scorer to the model's input size, and the
    # score still climbs.
    scorer = CLIPScorer(*small_hf_clip)
    res = ps.optimize_pixels(scorer, PROMPT, n=2, steps=4, generator=torch.Generator().manual_seed(0),
                             image_shape=(3, 64, 64))
    assert res.images.shape == (2, 3, 64, 64)
    assert (res.scores[-1] > res.scores[0]).all()
