"""course_utils.course.widgets.forward: the forward-process explorer's slider and dropdown drive what it shows."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.data import load_digits, make_shapes  # noqa: E402
from course_utils.schedules import get_schedule  # noqa: E402
from course_utils.course.widgets import ForwardExplorer  # noqa: E402


@pytest.fixture
def explorer():
    digits, _ = load_digits()
    return ForwardExplorer({"digits": digits[:3], "shapes": make_shapes(3).images})


@pytest.mark.widgets
def test_slider_and_dropdown_change_the_images(explorer):
    start = {k: v.clone() for k, v in explorer.current.items()}
    assert explorer.alpha_bar == pytest.approx(get_schedule("linear").alphas_cumprod[0].item())
    explorer.t_slider.value = 600
    assert explorer.alpha_bar == pytest.approx(get_schedule("linear").alphas_cumprod[600].item())
    for k in start:
        assert (explorer.current[k] - start[k]).abs().mean() > 0.3
    linear = explorer.current["digits"].clone()
    explorer.schedule_dropdown.value = "cosine"
    assert explorer.alpha_bar == pytest.approx(get_schedule("cosine").alphas_cumprod[600].item())
    assert not torch.equal(linear, explorer.current["digits"])
    assert "ᾱ" in explorer.info.value
    plt.close("all")


@pytest.mark.widgets
def test_explorer_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        ForwardExplorer({})
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ForwardExplorer({"x": torch.zeros(3, 4)})
    with pytest.raises(ValueError, match="same number of timesteps"):
        ForwardExplorer({"x": torch.zeros(1, 1, 4, 4)}, {"a": get_schedule("linear", 10), "b": get_schedule("linear")})


# --- the learner's noising (notebook 02's build) -----------------------------------------------

def learner_noise_batch(x0, t, schedule, generator):
    """A learner's build, written without the package: the closed form, one timestep per image."""
    noise = torch.randn(x0.shape, generator=generator)
    ab = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise, noise


@pytest.mark.widgets
def test_the_learners_noise_batch_drives_the_explorer():
    digits, _ = load_digits()
    images = {"digits": digits[:3], "shapes": make_shapes(3).images}
    package, learner = ForwardExplorer(images), ForwardExplorer(images, noise_batch=learner_noise_batch)
    calls = []

    def spy(x0, t, schedule, generator):
        calls.append((tuple(x0.shape), t.clone(), schedule.name))
        return learner_noise_batch(x0, t, schedule, generator)

    spied = ForwardExplorer(images, noise_batch=spy)
    for e in (package, learner, spied):
        e.t_slider.value = 600
        e.schedule_dropdown.value = "cosine"
    for k in images:  # the same noise (one generator seeded with seed, in label order) and the same formula
        assert torch.allclose(learner.current[k], package.current[k], atol=1e-5)
    assert "noised by learner_noise_batch" in learner.info.value and "noised by" not in package.info.value
    assert calls[-1][0] == (3, 3, 32, 32) and calls[-1][2] == "cosine"
    assert calls[-1][1].dtype == torch.long and calls[-1][1].tolist() == [600, 600, 600]  # a (B,) tensor of t
    before = spied.current["digits"].clone()
    spied.t_slider.value = 601
    spied.t_slider.value = 600
    assert torch.equal(spied.current["digits"], before)  # a seeded generator at every redraw: only t moves it
    plt.close("all")


@pytest.mark.widgets
def test_the_package_build_gives_the_default_images_exactly():
    from course_utils.course.exercises import nb02

    images = {"digits": load_digits()[0][:2], "shapes": make_shapes(2).images}
    default, built = ForwardExplorer(images, seed=3), ForwardExplorer(images, seed=3, noise_batch=nb02.noise_batch)
    built.t_slider.value = default.t_slider.value = 250
    assert all(torch.equal(default.current[k], built.current[k]) for k in images)
    plt.close("all")


@pytest.mark.widgets
@pytest.mark.parametrize("bad, error, came", [
    (5, TypeError, "Got int 5"),
    ("my_noise_batch", TypeError, "Got str 'my_noise_batch'"),
    (torch.Tensor, TypeError, "Got the class Tensor"),
    (lambda x0, t: x0, TypeError, "<lambda>(x0, t), which cannot take those four arguments"),
    (lambda x0, t, schedule, generator: x0, ValueError, "returned a tensor of shape (2, 1, 16, 16)"),
    (lambda x0, t, schedule, generator: (x0[:1], x0), ValueError, "x_t as a tensor of shape (1, 1, 16, 16)"),
    (lambda x0, t, schedule, generator: (x0 * float("nan"), x0), ValueError, "NaN"),
    (lambda x0, t, schedule, generator: 1 / 0, RuntimeError, "raised ZeroDivisionError"),
])
def test_a_bad_noise_batch_is_refused_naming_the_argument_what_came_and_what_is_accepted(bad, error, came):
    with pytest.raises(error) as caught:
        ForwardExplorer({"x": load_digits()[0][:2]}, noise_batch=bad)
    message = str(caught.value)
    assert "noise_batch must be a function noise_batch(x0, t, schedule, generator) -> (x_t, noise)" in message
    assert came in message
    plt.close("all")


@pytest.mark.widgets
def test_the_package_q_sample_is_told_apart():
    from course_utils.forward import q_sample

    with pytest.raises(TypeError, match="takes the noise instead of drawing it"):
        ForwardExplorer({"x": torch.zeros(1, 1, 4, 4)}, noise_batch=q_sample)
