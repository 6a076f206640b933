"""course_utils.denoisers: the wrappers a sampler steps on: a bound condition, and the consistent x0 clamp."""

import pytest
import torch

from course_utils.denoisers import ClampX0, WithCondition
from course_utils.parameterization import predict_x0_and_epsilon
from course_utils.schedules import get_schedule


class Spy(torch.nn.Module):
    """Records what it is called with; returns a float64 prediction (a network under another precision)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, **condition):
        self.calls.append((t, condition))
        return 2 * x.double()


def test_with_condition_passes_the_same_condition_at_every_call_as_float32():
    net, labels = Spy(), torch.tensor([3, 7])
    denoiser = WithCondition(net, torch.device("cpu"), class_labels=labels)
    x = torch.ones(2, 1, 4, 4)
    for t in (torch.tensor(999), torch.tensor(500)):
        out = denoiser(x, t)
        assert out.dtype == torch.float32 and torch.equal(out, 2 * x)
    assert [int(t) for t, _ in net.calls] == [999, 500]
    assert all(set(c) == {"class_labels"} and torch.equal(c["class_labels"], labels) for _, c in net.calls)
    assert WithCondition(Spy(), torch.device("cpu")).condition == {}  # an unconditional network: nothing bound


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_clamp_x0_clamps_the_implied_x0_under_the_schedule_at_t(prediction_type):
    schedule, t = get_schedule("cosine"), torch.tensor(300)
    g = torch.Generator().manual_seed(0)
    x, raw = 2 * torch.randn(4, 1, 4, 4, generator=g), 3 * torch.randn(4, 1, 4, 4, generator=g)
    out = ClampX0(lambda x_t, t_: raw, schedule, prediction_type)(x, t)
    a = schedule.alphas_cumprod[300].item()  # alpha_bar at the denoiser's own t
    x0, _ = predict_x0_and_epsilon(out, x, a, prediction_type)
    x0_raw, _ = predict_x0_and_epsilon(raw, x, a, prediction_type)
    assert x0_raw.abs().max() > 1  # the test could fail: some of the raw x0 lies outside [-1, 1]
    torch.testing.assert_close(x0.float(), x0_raw.clamp(-1, 1).float(), atol=1e-5, rtol=1e-5)


def test_clamp_x0_of_a_flow_points_the_velocity_at_the_clamped_x0():
    # A flow's x0 is x - sigma v, with sigma = t / 1000.
    g = torch.Generator().manual_seed(1)
    x, v = 2 * torch.randn(3, 2, generator=g), 3 * torch.randn(3, 2, generator=g)
    out = ClampX0(lambda x_t, t_: v, None, "flow")(x, torch.tensor(250.0))
    torch.testing.assert_close(x - 0.25 * out, (x - 0.25 * v).clamp(-1, 1))
    inside = (x - 0.25 * v).abs() < 1
    assert inside.any() and not inside.all()
    torch.testing.assert_close(out[inside], v[inside])  # where x0 was in range, the velocity is unchanged
