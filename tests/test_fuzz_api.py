"""Random wrong types and values into the main public entry points (issue 30): whatever comes in,
only the package's documented exceptions come out (``ValueError`` for a value out of range,
``TypeError`` for a value of the wrong kind), never torch's or numpy's internals, and never a hang.

Integers are drawn either small or far too large, so that a value the API accepts is quick to run.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from course_utils import metrics, pretrained
from course_utils.forward import q_sample
from course_utils.samplers import (ConsistencySampler, DDIMSampler, DDPMSampler, DPMSolverSampler, FlowMatchEulerSampler,
                                   FlowMatchHeunSampler)
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig

DOCUMENTED = (ValueError, TypeError)
COSINE = get_schedule("cosine")
FUZZ = settings(max_examples=int(__import__("os").environ.get("COURSE_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])

small_or_huge = st.one_of(st.integers(-10**12, 4), st.integers(10**10, 10**13))
anything = st.one_of(
    st.none(), st.booleans(), small_or_huge, st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=4), st.lists(st.integers(-3, 3), max_size=3),
    st.tuples(st.integers(0, 3), st.floats(allow_nan=True)), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from([np.int64(3), np.float32(0.5), np.float64(float("nan")), np.bool_(True), np.array([1, 2]),
                     np.random.default_rng(0), torch.tensor(float("nan")), torch.tensor([1, 2]),
                     torch.zeros(2, 1, 16, 16), torch.full((1, 1, 16, 16), float("inf")), torch.Generator(), object(),
                     "cosine", "ddim", "images", complex(1, 2), range(3), 1e308, -0.0]),
)


def _only_documented(call):
    try:
        call()
    except DOCUMENTED:
        pass


@pytest.fixture(scope="module")
def model():
    return pretrained.load("digits-class", device="cpu")


@FUZZ
@given(name=anything, num_timesteps=anything, beta_start=anything)
def test_get_schedule(name, num_timesteps, beta_start):
    _only_documented(lambda: get_schedule(name))
    _only_documented(lambda: get_schedule("linear", num_timesteps))
    _only_documented(lambda: get_schedule("linear", 10, beta_start=beta_start))


@FUZZ
@given(value=anything, where=st.sampled_from(["x0", "t", "noise", "schedule"]))
def test_q_sample(value, where):
    args = {"x0": torch.zeros(2, 3), "t": torch.tensor([1, 2]), "noise": torch.zeros(2, 3), "schedule": COSINE}
    _only_documented(lambda: q_sample(**(args | {where: value})))


SAMPLERS = [lambda: DDPMSampler(COSINE), lambda: DDIMSampler(COSINE), lambda: DPMSolverSampler(COSINE),
            lambda: ConsistencySampler(COSINE), FlowMatchEulerSampler, FlowMatchHeunSampler]


@FUZZ
@given(make=st.sampled_from(SAMPLERS), value=anything,
       where=st.sampled_from(["model_output", "timestep", "sample", "generator", "num_inference_steps"]))
def test_a_samplers_set_timesteps_and_step(make, value, where):
    sampler = make()
    if where == "num_inference_steps":
        _only_documented(lambda: sampler.set_timesteps(value))
        return
    sampler.set_timesteps(2)
    args = {"model_output": torch.zeros(2, 3), "timestep": sampler.timesteps[0], "sample": torch.zeros(2, 3),
            "generator": None}
    _only_documented(lambda: sampler.step(**(args | {where: value})))


@FUZZ
@given(value=anything, where=st.sampled_from(["n", "steps", "labels", "guidance_scale", "sampler", "eta",
                                              "batch_size", "clip_sample", "output", "generator", "prompts"]))
def test_diffusion_model_sample(model, value, where):
    # A huge n is valid and samples batch after batch for ever (hypothesis 6.100 drew n = 10**10 and hung the canary)
    assume(not (where == "n" and isinstance(value, (int, np.integer)) and value > 64))
    args = {"n": 2, "steps": 2} | {where: value}
    _only_documented(lambda: model.sample(**args))


@FUZZ
@given(value=anything, which=st.sampled_from(["digits_fid", "digits_kid", "class_adherence", "class_distribution",
                                             "within_class_diversity", "saturation", "prompt_adherence",
                                             "predict_digits"]), where=st.sampled_from(["images", "second"]))
def test_the_metrics(value, which, where):
    images = torch.zeros(4, 1, 16, 16) if which != "prompt_adherence" else torch.zeros(4, 3, 32, 32)
    second = {"class_adherence": [1, 2, 3, 4], "within_class_diversity": [1, 1, 2, 2], "saturation": 0.9,
              "prompt_adherence": "a red circle on a blue background"}.get(which)
    fn = getattr(metrics, which)
    if where == "images":
        _only_documented(lambda: fn(value) if second is None else fn(value, second))
    elif second is not None:
        _only_documented(lambda: fn(images, value))


FIELDS = ["steps", "batch_size", "lr", "warmup_steps", "lr_decay", "min_lr_ratio", "weight_decay", "grad_clip", "ema_decay", "ema_warmup",
          "prediction_type", "objective", "original_inference_steps", "label_dropout", "precision", "compile",
          "cuda_graph", "log_every", "checkpoint_every", "seed"]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=anything)
def test_train_config(field, value):
    _only_documented(lambda: TrainConfig(**{field: value}))
