"""A catalogue of bad input (issue #10): each kind is refused with an error that names what is accepted.

One row per kind of mistake a learner makes, across the public API: wrong shapes, dtypes and
ranges, unknown names, non-positive counts, out-of-range guidance, unknown words, images outside
[-1, 1]. Nothing here may return a NaN or a wrongly shaped result instead of raising.
"""

import re

import pytest
import torch

from course_utils import config, metrics, pretrained
from course_utils.course import evaluation, failures, production, speed
from course_utils.metrics import distances
from course_utils.data import load_digits, make_shapes, make_toy2d
from course_utils.course.exercises.nb10 import bottleneck_question
from course_utils.forward import q_sample
from course_utils.guidance import check_guidance_scale
from course_utils.models import build_denoiser
from course_utils.models.text import shapes_tokenizer
from course_utils.course.quiz import SelfCheckQuiz
from course_utils.parameterization import convert_prediction, x0_from_epsilon
from course_utils.samplers import DDIMSampler, DPMSolverSampler, FlowMatchEulerSampler
from course_utils.schedules import NoiseSchedule, get_schedule
from course_utils.training import TrainConfig, train


def _model(name="digits-class"):
    return pretrained.load(name, device="cpu")


X = torch.zeros(2, 1, 16, 16)
COSINE = get_schedule("cosine")

CASES = [
    # unknown names
    ("unknown schedule", lambda: get_schedule("sigmoid"), r"linear.*cosine"),
    ("unknown pretrained model", lambda: pretrained.load("stable-diffusion", device="cpu"), r"digits-ddpm"),
    ("unknown network preset", lambda: build_denoiser("unet-xl"), r"digits"),
    ("unknown sampler for a model", lambda: _model().sample(1, sampler="euler-ancestral"), r"ddim"),
    ("student's sampler on a diffusion model", lambda: _model().sample(1, sampler="consistency"), r"ddim"),
    ("unknown prediction type", lambda: convert_prediction(X, X, 0.5, "noise", "sample"), r"epsilon"),
    ("unknown COURSE_MODE", lambda: config.by_mode(1, 2, 3, mode="turbo"), r"fast.*cpu.*full"),
    ("unknown device", lambda: config.get_device("tpu"), r"cuda.*cpu"),
    ("unknown toy dataset", lambda: make_toy2d("spiral"), r"moons"),
    ("unknown digits split", lambda: load_digits(split="validation"), r"'train'"),
    ("unknown training objective", lambda: TrainConfig(objective="gan"), r"diffusion"),
    ("unknown precision", lambda: production.autocast(torch.device("cpu"), "fp8"), r"bf16"),
    ("unknown sampler row", lambda: speed.spec("heun-ancestral", 10), r"DDIM"),
    ("unknown saturation end", lambda: metrics.saturation(X, ends="middle"), r"both"),
    # counts and step numbers
    ("zero samples", lambda: _model().sample(0), r"n must be a positive"),
    ("negative steps", lambda: _model().sample(1, steps=-5), r"steps must be a positive"),
    ("zero inference steps", lambda: DDIMSampler(COSINE).set_timesteps(0), r"positive"),
    ("more inference steps than training steps", lambda: DDIMSampler(COSINE).set_timesteps(2000), r"1000"),
    ("too many DPM-Solver++ steps", lambda: DPMSolverSampler(COSINE).set_timesteps(5000), r"1000"),
    ("zero flow steps", lambda: FlowMatchEulerSampler().set_timesteps(0), r"positive"),
    ("zero training steps", lambda: TrainConfig(steps=0), r"steps must be a positive"),
    ("a float batch size", lambda: TrainConfig(batch_size=3.5), r"batch_size"),
    ("negative learning rate", lambda: TrainConfig(lr=-1e-3), r"lr must be a positive"),
    ("fine-tuning for zero steps", lambda: failures.finetune(_model(), X, steps=0, label=3), r"steps"),
    # timesteps and schedules
    ("timestep past the schedule", lambda: q_sample(X, torch.tensor([1000, 0]), X, COSINE), r"\[0, 999\]"),
    ("negative timestep", lambda: q_sample(X, torch.tensor([-1, 0]), X, COSINE), r"\[0, 999\]"),
    ("float timesteps", lambda: q_sample(X, torch.tensor([0.5, 1.0]), X, COSINE), r"integer"),
    ("beta above one", lambda: NoiseSchedule(torch.tensor([0.5, 1.5])), r"\(0, 1\]"),
    ("alpha bar of zero", lambda: x0_from_epsilon(X, X, 0.0), r"alpha_bar"),
    # guidance
    ("negative guidance scale", lambda: check_guidance_scale(-1.0), r"\[0, 50\]"),
    ("huge guidance scale", lambda: check_guidance_scale(500.0), r"\[0, 50\]"),
    ("NaN guidance scale", lambda: check_guidance_scale(float("nan")), r"\[0, 50\]"),
    ("guidance without a condition", lambda: _model().sample(1, guidance_scale=3.0), r"labels"),
    ("label out of range", lambda: _model().sample(1, labels=10), r"0.*9"),
    ("labels for an unconditional model", lambda: _model("digits-ddpm").sample(1, labels=3), r"unconditional"),
    # text
    ("a prompt with an unknown word", lambda: shapes_tokenizer().encode(["a purple hexagon"]), r"circle"),
    ("prompts for a class model", lambda: _model().sample(1, prompts="a red circle"), r"text-conditioned"),
    ("a caption the judge cannot read", lambda: metrics.prompt_adherence(torch.zeros(1, 3, 32, 32), "a dog"),
     r"circle|caption"),
    # images and shapes
    ("images outside [-1, 1] for training",
     lambda: train(build_denoiser("digits-tiny"), X + 3, COSINE, TrainConfig(steps=1)), r"\[-1, 1\]"),
    ("digits-FID at the wrong N", lambda: metrics.digits_fid(torch.zeros(10, 1, 16, 16)), r"898"),
    ("digits of the wrong size", lambda: metrics.digits_kid(torch.zeros(10, 1, 8, 8)), r"16"),
    ("FID counts beyond the real data", lambda: evaluation.fid_by_sample_count(X, [5000]), r"898"),
    ("a one-image diversity", lambda: distances.pairwise_diversity(X[:1]), r"N >= 2"),
    ("regularisation images of another shape", lambda: failures.finetune_set(X, torch.zeros(2, 3, 16, 16)),
     r"regularization"),
    ("shapes of a zero size", lambda: make_shapes(n=0), r"n must be a positive"),
    ("three channels into a one-channel U-Net", lambda: _model().unet(torch.zeros(2, 3, 16, 16), torch.tensor(1)),
     r"\(B, 1, H, W\)"),
    ("an image without its batch axis", lambda: _model().unet(torch.zeros(1, 16, 16), torch.tensor(1)),
     r"\(B, 1, H, W\)"),
    ("noise of another shape", lambda: q_sample(X, 1, torch.zeros(2, 1, 5, 5), COSINE), r"Shapes must match"),
    ("more timesteps than images", lambda: q_sample(X, torch.tensor([1, 2, 3]), X, COSINE), r"shape \(B,\)"),
    ("NaN images into a metric", lambda: metrics.digits_fid(torch.full((898, 1, 16, 16), float("nan"))), r"NaN"),
    ("images outside [-1, 1] into a metric", lambda: metrics.digits_fid(torch.full((898, 1, 16, 16), 5.0)),
     r"\[-1, 1\]"),
    # widgets and questions
    ("a quiz with no questions", lambda: SelfCheckQuiz(questions=[]), r"question"),
    ("a quiz needing zero words", lambda: SelfCheckQuiz(min_words=0), r"min_words"),
    ("a bottleneck question from one row", lambda: bottleneck_question([{"factor": "a", "change": "b", "ms": 1.0}]),
     r"at least two"),
]


@pytest.mark.parametrize("what, call, accepted", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_what_is_accepted(what, call, accepted):
    with pytest.raises((ValueError, TypeError, KeyError, IndexError)) as info:
        result = call()
        pytest.fail(f"{what}: no error; returned {type(result).__name__}")
    message = str(info.value)
    assert len(message) > 20, f"{what}: message too short to help: {message!r}"
    assert re.search(accepted, message), f"{what}: {message!r} does not say what is accepted ({accepted!r})"


def test_the_catalogue_counts_at_least_thirty_kinds():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30
