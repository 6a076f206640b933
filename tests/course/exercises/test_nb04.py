"""course_utils.course.exercises.nb04: right answers pass, known slips get their hints, stubs are 'not attempted'."""

import pytest
import torch

from course_utils.course.exercises import ExerciseFailed, nb04
from course_utils.models import timestep_embedding


def right_bottleneck(size, base, mults):
    side = size // 2 ** (len(mults) - 1)
    return (base * mults[-1], side, side)


def test_bottleneck_shape(stub):
    # digits-small: 16 px, 3 levels -> two halvings -> 4x4, channels 32 * 2 = 64.
    assert nb04.reference_bottleneck_shape(16, 32, (1, 2, 2)) == (64, 4, 4)
    assert nb04.check_bottleneck_shape(right_bottleneck).correct
    wrong = nb04.check_bottleneck_shape(lambda s, b, m: (b * m[-1], s // 2 ** len(m), s // 2 ** len(m)))
    assert wrong.status == "incorrect" and "halving" in wrong.message
    summed = nb04.check_bottleneck_shape(lambda s, b, m: (b * sum(m), s // 2 ** (len(m) - 1), s // 2 ** (len(m) - 1)))
    assert "LAST" in summed.message
    assert nb04.check_bottleneck_shape(stub).status == "not attempted"


def test_timestep_embedding(stub):
    assert nb04.check_timestep_embedding(timestep_embedding).correct
    def sin_first(t, d):
        e = timestep_embedding(t, d)
        return torch.cat([e[:, d // 2:], e[:, : d // 2]], 1)
    res = nb04.check_timestep_embedding(sin_first)
    assert res.status == "incorrect" and "cosines come first" in res.message
    assert nb04.check_timestep_embedding(stub).status == "not attempted"


def test_sample_timesteps(stub):
    right = lambda b, T, g: torch.randint(0, T, (b,), generator=g)  # noqa: E731
    assert nb04.check_sample_timesteps(right).correct
    one_indexed = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(1, T + 1, (b,), generator=g))
    assert one_indexed.status == "incorrect" and "1-indexed" in one_indexed.message
    floats = nb04.check_sample_timesteps(lambda b, T, g: torch.rand(b, generator=g) * T)
    assert "integers" in floats.message
    skewed = nb04.check_sample_timesteps(
        lambda b, T, g: (torch.rand(b, generator=g) ** 2 * T).long().clamp(max=T - 1).index_put_(
            (torch.tensor([0, 1]),), torch.tensor([0, T - 1])))
    assert "uniform" in skewed.message
    narrow = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(0, T - 1, (b,), generator=g))
    assert "must be possible" in narrow.message
    assert nb04.check_sample_timesteps(stub).status == "not attempted"


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb04.check_sample_timesteps(lambda b, T, g: torch.randint(1, T + 1, (b,), generator=g))
    with pytest.raises(ExerciseFailed):
        nb04.check_bottleneck_shape(lambda s, b, m: (1, 1, 1))


@pytest.mark.widgets
def test_skip_question():
    box = nb04.skip_question()
    field = box.field
    field.value = "The timestep information"
    box.check()
    assert "timestep embedding directly" in box.result.message
    field.value = "The fine spatial detail that the 4x4 bottleneck cannot hold"
    box.check()
    assert box.result.correct


def test_timestep_draws_that_ignore_the_generator_are_caught():
    """A fixed internal seed passes every statistical test; only another generator reveals it."""
    fixed = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(0, T, (b,), generator=torch.Generator().manual_seed(0)))
    assert fixed.status == "incorrect" and "ignored" in fixed.message
    global_rng = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(0, T, (b,)))
    assert global_rng.status == "incorrect" and "global" in global_rng.message
