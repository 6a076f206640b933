"""course_utils.course.widgets.sampler: the sampler explorer of notebook 09 draws and reports refusals."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_utils.course import speed  # noqa: E402
from course_utils.course.widgets import SamplerExplorer  # noqa: E402


def test_sampler_explorer_draws_and_reports_refusals():
    explorer = SamplerExplorer(n=4)
    explorer.row.value, explorer.steps.value = "DDIM", 3
    explorer.draw()
    assert explorer.images.shape == (4, 1, 16, 16) and explorer.nfe == 3 and "DDIM-3" in explorer.status.value
    explorer.row.value, explorer.steps.value = "Heun-Karras", 3
    explorer.draw()  # with the row's options: Karras levels from sigma_max = 80, as in the speed table
    want = speed.measure([speed.spec("Heun-Karras", 3)], n=4)[0]["samples"]
    assert explorer.nfe == 5 and (explorer.images == want).all()
    explorer.row.value, explorer.steps.value = "student", 50
    explorer.draw()
    assert explorer.nfe == 50
    explorer.steps.max = 60
    explorer.steps.value = 60
    explorer.draw()  # the student was distilled on a 50-point grid: reported, not raised
    assert "at most original_inference_steps = 50" in explorer.status.value
    with pytest.raises(ValueError, match="rows must be some of"):
        SamplerExplorer(rows=("DDIM", "LCM"))
    plt.close("all")
