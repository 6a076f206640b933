"""course_utils.samplers.consistency: the consistency sampler's boundary scalings, its grid and its steps."""

import pytest
import torch

from course_utils.samplers import ConsistencySampler
from course_utils.samplers.consistency import boundary_scalings, solver_timesteps
from course_utils.schedules import get_schedule


def test_boundary_condition_and_grid():
    c_skip, c_out = boundary_scalings(0)
    assert (c_skip, c_out) == (1.0, 0.0)  # f(x, 0) = x
    c_skip, c_out = boundary_scalings(19)
    assert c_out > 0.9999 and c_skip < 1e-5  # from the first grid point on, f is the x0 estimate
    assert solver_timesteps(1000, 50).tolist() == list(range(19, 1000, 20))
    assert solver_timesteps(1000, 1).tolist() == [999]
    with pytest.raises(ValueError, match="at most num_train_timesteps = 1000"):
        solver_timesteps(1000, 1001)


def test_fewer_steps_take_evenly_spaced_points_of_the_grid_from_the_noisiest():
    # The grid of N = 50 is 19, 39, ..., 999; n steps take every (50 / n)-th point from 999 down (LCM's rule).
    s = ConsistencySampler(get_schedule("cosine"))
    s.set_timesteps(1)
    assert s.timesteps.tolist() == [999]
    s.set_timesteps(2)
    assert s.timesteps.tolist() == [999, 499]
    s.set_timesteps(5)
    assert s.timesteps.tolist() == [999, 799, 599, 399, 199]


def test_one_step_of_an_exact_student_lands_on_the_data():
    # All data is one image x*: the exact noise prediction at x_t is (x_t - sqrt(a) x*) / sqrt(1 - a), its x0
    # estimate is x*, and from t = 19 on f(x_t, t) is c_out x* + c_skip x_t with c_skip < 1e-5. (In float64:
    # at a = alpha_bar_999 = 2.4e-9, reading x0 multiplies the rounding of eps by 1 / sqrt(a) = 2e4.)
    schedule = get_schedule("cosine")
    a = schedule.alphas_cumprod[999].item()
    x_star = torch.full((2, 1, 2, 2), 0.4, dtype=torch.float64)
    s = ConsistencySampler(schedule)
    s.set_timesteps(1)
    x_t = torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = (x_t - a**0.5 * x_star) / (1 - a) ** 0.5
    out = s.step(eps, 999, x_t)
    c_skip, c_out = boundary_scalings(999)
    torch.testing.assert_close(out.prev_sample, c_out * x_star + c_skip * x_t)
    torch.testing.assert_close(out.prev_sample, x_star, atol=1e-5, rtol=0)
    assert torch.equal(out.prev_sample, out.pred_original_sample)  # the last step adds no noise
