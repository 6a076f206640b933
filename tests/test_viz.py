"""course_utils.viz: plots are labelled and image grids are laid out as asked (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import viz  # noqa: E402
from course_utils.data import make_toy2d  # noqa: E402
from course_utils.schedules import SCHEDULE_NAMES, get_schedule  # noqa: E402


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
