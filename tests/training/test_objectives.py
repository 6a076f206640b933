"""course_utils.training.objectives: the loss of each model family, label dropout, and what each family needs."""

import pytest
import torch

from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, diffusion_loss, simple_loss
from course_utils.training.objectives import make_objective


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3])
def test_label_dropout_replaces_labels_at_the_rate_asked(rate):
    seen = []

    def spy(x, t, class_labels):  # records what the network is shown, predicts zeros
        seen.append(class_labels.clone())
        return torch.zeros_like(x)

    labels = torch.arange(10).repeat(400)  # (4000,)
    x0 = torch.zeros(len(labels), 1, 2, 2)
    diffusion_loss(spy, x0, get_schedule("cosine", 100).alphas_cumprod, torch.Generator().manual_seed(0),
                   labels=labels, label_dropout=rate, null_label=10)
    shown = seen[0]
    dropped = shown == 10
    assert torch.equal(shown[~dropped], labels[~dropped])  # kept labels are unchanged
    sd = (rate * (1 - rate) / len(labels)) ** 0.5
    assert abs(dropped.float().mean().item() - rate) <= 4 * sd + 1e-9
    for digit in range(10):  # every digit is dropped at about the same rate
        share = dropped[labels == digit].float().mean().item()
        assert abs(share - rate) <= 4 * (rate * (1 - rate) / 400) ** 0.5 + 1e-9


def test_flow_objective_needs_no_schedule_but_diffusion_does():
    from course_utils.models.mlp import ToyMLP
    from course_utils.training import TrainConfig, train

    data = torch.randn(64, 2)
    with pytest.raises(ValueError, match="needs the noise schedule"):
        train(ToyMLP(), data, None, TrainConfig(steps=1, batch_size=8), progress=False, value_range=None)
    with pytest.raises(ValueError, match="'diffusion', 'flow_matching'"):
        TrainConfig(objective="score")


def exact_model(x0, noise, alphas_cumprod, prediction_type):
    """A network that knows the clean data: from (x_t, t) it returns exactly the target the loss asks for."""

    def model(x_t, t):
        a = alphas_cumprod[t].view(-1, *([1] * (x_t.ndim - 1)))
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction_type]

    return model


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_simple_loss_is_zero_for_a_perfect_predictor_and_the_targets_power_for_zero(prediction_type):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 1000, (8,), generator=g)
    ab = get_schedule("cosine").alphas_cumprod
    perfect = simple_loss(exact_model(x0, noise, ab, prediction_type), x0, t, noise, ab, prediction_type)
    assert perfect.item() < 1e-10
    # A network that predicts 0 pays mean(target^2); for epsilon-prediction the target is the noise itself.
    zero = simple_loss(lambda x, t: torch.zeros_like(x), x0, t, noise, ab, prediction_type)
    if prediction_type == "epsilon":
        assert zero.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)
    assert zero.item() > 0.1


def test_a_shards_rows_are_the_whole_batchs_rows():
    # Every draw is made for the whole batch and each process keeps its rows: with two equal shards, the
    # mean of the shard losses is the whole batch's loss (the same t, the same noise, row by row).
    x0 = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ab = get_schedule("cosine", 100).alphas_cumprod.float()
    model = lambda x, t: 0.5 * x  # noqa: E731
    loss = lambda shard: diffusion_loss(model, x0, ab, torch.Generator().manual_seed(2), shard=shard)  # noqa: E731
    whole = loss(slice(None))
    torch.testing.assert_close((loss(slice(0, 4)) + loss(slice(4, 8))) / 2, whole)
    assert loss(slice(None)).item() == whole.item()  # the same seed, the same draws
    assert diffusion_loss(model, x0, ab, torch.Generator().manual_seed(3)).item() != whole.item()


@pytest.mark.parametrize("objective, schedule, teacher, match", [
    ("diffusion", None, None, "the diffusion objective needs the noise schedule"),
    ("consistency", "cosine", None, "objective='consistency' needs a teacher"),
    ("diffusion", "cosine", "teacher", "and only it takes one"),
    ("flow_matching", None, "teacher", "and only it takes one"),
    ("consistency", None, "teacher", "consistency distillation needs the teacher's noise schedule"),
])
def test_make_objective_refuses_a_family_without_what_it_needs(objective, schedule, teacher, match):
    config = TrainConfig(objective=objective)
    schedule = get_schedule(schedule) if schedule else None
    teacher = torch.nn.Identity() if teacher else None
    with pytest.raises(ValueError, match=match):
        make_objective(config, schedule, torch.Generator(), None, slice(None), teacher)


def test_each_family_gets_its_own_loss():
    # With x0 = 0 both targets are the noise itself (flow matching's velocity eps - x0, diffusion's eps), so a
    # network that predicts 0 pays E[eps^2] = 1 under either (8,192 draws: within 0.05). Flow needs no schedule.
    x0 = torch.zeros(4096, 2)
    flow = make_objective(TrainConfig(objective="flow_matching"), None, torch.Generator().manual_seed(0), None,
                          slice(None))
    assert flow(lambda x, t: torch.zeros_like(x), x0, None).item() == pytest.approx(1.0, abs=0.05)
    diffusion = make_objective(TrainConfig(), get_schedule("cosine"), torch.Generator().manual_seed(0), None,
                               slice(None))
    assert diffusion(lambda x, t: torch.zeros_like(x), x0, None).item() == pytest.approx(1.0, abs=0.05)
