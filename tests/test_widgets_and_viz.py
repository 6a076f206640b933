"""Widgets drive what they show; plots are labelled. Runs headless (no browser, Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import viz  # noqa: E402
from course_utils.data import load_digits, make_shapes, make_toy2d  # noqa: E402
from course_utils.schedules import SCHEDULE_NAMES, get_schedule  # noqa: E402
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


def test_plots_are_labelled():
    axes = viz.plot_schedules([get_schedule(n) for n in SCHEDULE_NAMES])
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert len(ax.get_legend().get_texts()) == 3
    ax = viz.scatter2d(make_toy2d("moons", 100), title="moons")
    assert ax.get_xlabel() and ax.get_title() == "moons"
    traj = torch.randn(11, 5, 2)
    ax = viz.plot_trajectories(traj, title="paths")
    assert ax.get_legend() is not None
    plt.close("all")


def test_image_grid_layout():
    imgs = torch.linspace(-1, 1, 5 * 3 * 4 * 4).reshape(5, 3, 4, 4)
    grid = viz.image_grid(imgs, nrow=2, pad=1)
    assert grid.shape == (3 * 5 - 1, 2 * 5 - 1, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    ax = viz.show_images(imgs, nrow=5, title="t")
    assert ax.get_title() == "t"
    with pytest.raises(ValueError, match="C = 1 or 3"):
        viz.image_grid(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="titles"):
        viz.show_row(imgs, ["a"])
    plt.close("all")
