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
