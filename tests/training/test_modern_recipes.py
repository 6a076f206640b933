"""The 2023-2024 training recipes: min-SNR-gamma weights, SD3's logit-normal and shifted flow-matching
times, and zero terminal SNR (against diffusers' own function)."""

import math

import pytest
import torch

from course_utils.flow_matching import flow_matching_loss, sample_sigmas, shift_sigma
from course_utils.schedules import get_schedule, rescale_zero_terminal_snr
from course_utils.training import TrainConfig
from course_utils.training.objectives import min_snr_weights, simple_loss


def test_min_snr_weights_are_min_snr_gamma_in_x0_terms():
    snr = torch.tensor([0.01, 1.0, 5.0, 100.0], dtype=torch.float64)
    assert torch.allclose(min_snr_weights(snr, 5.0, "sample"), torch.tensor([0.01, 1.0, 5.0, 5.0], dtype=torch.float64))
    # eps error = SNR x (x0 error): the eps weight times SNR is min(SNR, gamma)
    assert torch.allclose(min_snr_weights(snr, 5.0, "epsilon") * snr, snr.clamp(max=5.0))
    assert torch.allclose(min_snr_weights(snr, 5.0, "v_prediction") * (snr + 1), snr.clamp(max=5.0))


def test_min_snr_loss_equals_the_weighted_mean_of_per_example_errors():
    schedule = get_schedule("cosine")
    alphas = schedule.alphas_cumprod.float()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g)
    t = torch.tensor([0, 10, 200, 500, 900, 999])

    def model(x, t):
        return 0.5 * x

    plain = simple_loss(model, x0, t, noise, alphas)
    weighted = simple_loss(model, x0, t, noise, alphas, snr_gamma=5.0)
    a = alphas[t].view(-1, 1, 1, 1)
    per = (model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - noise).pow(2).flatten(1).mean(1)
    snr = alphas[t].double() / (1 - alphas[t].double())
    assert torch.allclose(plain, per.mean())
    assert torch.allclose(weighted, (min_snr_weights(snr, 5.0).float() * per).mean())
    assert weighted < plain  # every epsilon weight is at most 1, and below 1 where SNR > 5


def test_logit_normal_sigmas_follow_sd3():
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(200_000, g, time_sampling="logit_normal")
    logits = torch.log(s / (1 - s))
    assert abs(logits.mean()) < 0.01 and abs(logits.std() - 1) < 0.01
    assert s.min() > 0 and s.max() < 1
    uniform = sample_sigmas(200_000, torch.Generator().manual_seed(0))
    assert abs(uniform.mean() - 0.5) < 0.005 and abs(uniform.var() - 1 / 12) < 0.002
    # the default draw is the one the loss always made: torch.rand(B)
    assert torch.equal(sample_sigmas(5, torch.Generator().manual_seed(3)), torch.rand(5, generator=torch.Generator().manual_seed(3)))


def test_shift_keeps_the_ends_and_moves_the_middle_towards_noise():
    assert shift_sigma(0.0, 3.0) == 0.0 and shift_sigma(1.0, 3.0) == 1.0
    assert shift_sigma(0.5, 3.0) == pytest.approx(0.75)
    g = torch.Generator().manual_seed(1)
    shifted = sample_sigmas(100_000, g, shift=3.0)
    assert shifted.median() == pytest.approx(0.75, abs=0.01)


def test_flow_loss_uses_the_chosen_times():
    seen = []

    def model(x, timestep):
        seen.append(timestep.clone())
        return torch.zeros_like(x)

    x0 = torch.zeros(4096, 2)
    flow_matching_loss(model, x0, torch.Generator().manual_seed(0), time_sampling="logit_normal", shift=3.0)
    sigma = seen[0] / 1000
    assert sigma.median() == pytest.approx(0.75, abs=0.03)


def test_zero_terminal_snr_matches_diffusers():
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr as diffusers_rescale

    for name in ("linear", "scaled_linear", "cosine"):
        schedule = get_schedule(name)
        ours = rescale_zero_terminal_snr(schedule)
        theirs = diffusers_rescale(schedule.betas.clone())
        assert torch.allclose(ours.betas, theirs, rtol=1e-10, atol=1e-12), name
        assert ours.alphas_cumprod[-1] == 0 and ours.betas[-1] == 1
        assert math.isclose(ours.alphas_cumprod[0], schedule.alphas_cumprod[0], rel_tol=1e-12)
    assert torch.equal(get_schedule("scaled_linear", rescale_betas_zero_snr=True).betas,
                       rescale_zero_terminal_snr(get_schedule("scaled_linear")).betas)
    # the problem it fixes: SD's schedule leaves 6.8% of the image's amplitude at its noisiest step
    assert get_schedule("scaled_linear").alphas_cumprod[-1].sqrt() == pytest.approx(0.068, abs=0.001)


@pytest.mark.parametrize("kwargs, words", [
    ({"snr_gamma": 0}, "snr_gamma"),
    ({"snr_gamma": 5.0, "objective": "flow_matching"}, "snr_gamma"),
    ({"time_sampling": "logit_normal"}, "time_sampling"),
    ({"time_shift": 3.0}, "time_shift"),
    ({"time_sampling": "beta", "objective": "flow_matching"}, "time_sampling"),
    ({"time_shift": -1.0, "objective": "flow_matching"}, "time_shift"),
    ({"logit_std": 0.0, "objective": "flow_matching"}, "logit_std"),
])
def test_recipe_options_refused_where_they_do_not_apply(kwargs, words):
    with pytest.raises((ValueError, TypeError), match=words):
        TrainConfig(**kwargs)


def test_bad_rescale_inputs():
    with pytest.raises(TypeError, match="NoiseSchedule"):
        rescale_zero_terminal_snr(torch.ones(3))
    with pytest.raises((TypeError, ValueError), match="rescale_betas_zero_snr"):
        get_schedule("cosine", rescale_betas_zero_snr="yes")
    with pytest.raises(ValueError, match="sample_sigmas|time_sampling"):
        sample_sigmas(3, time_sampling="normal")


def test_zero_terminal_snr_samples_with_v_prediction_and_refuses_epsilon():
    """At alpha_bar_T = 0 a noise prediction says nothing about x0: every sampler refuses it by name;
    v-prediction samples to finite images with each, and DPM-Solver++ matches diffusers' scheduler,
    which stands 2^-24 in for the zero."""
    from diffusers import DPMSolverMultistepScheduler

    from course_utils.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, sample_loop

    from course_utils.training import TrainConfig, train

    schedule = get_schedule("scaled_linear", rescale_betas_zero_snr=True)
    with pytest.raises(ValueError, match="prediction_type='epsilon'.*zero terminal SNR.*v_prediction"):
        train(torch.nn.Conv2d(1, 1, 1), torch.zeros(4, 1, 4, 4), schedule, TrainConfig(steps=1, batch_size=2),
              progress=False)
    for cls in (DDIMSampler, DDPMSampler, DPMSolverSampler):
        with pytest.raises(ValueError, match="prediction_type='epsilon'.*zero terminal SNR.*v_prediction"):
            cls(schedule)
        x = sample_loop(lambda x, t: 0.1 * x, cls(schedule, prediction_type="v_prediction"), (2, 1, 4, 4), 10,
                        generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(x).all()
    theirs = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                                         beta_end=0.012, prediction_type="v_prediction", rescale_betas_zero_snr=True)
    ours = DPMSolverSampler(schedule, prediction_type="v_prediction")
    want = sample_loop(lambda x, t: 0.1 * x, theirs, (2, 1, 4, 4), 10, generator=torch.Generator().manual_seed(0))
    got = sample_loop(lambda x, t: 0.1 * x, ours, (2, 1, 4, 4), 10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_the_x0_clamp_works_at_zero_terminal_snr_for_v_and_refuses_epsilon():
    from course_utils.parameterization import clamp_x0_prediction

    x, v = torch.randn(2, 1, 4, 4), 3 * torch.randn(2, 1, 4, 4)
    got = clamp_x0_prediction(v, x, 0.0, "v_prediction")  # alpha_bar = 0: x0 = -v, clamped
    torch.testing.assert_close(got, (-v).clamp(-1, 1).neg())
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \(0, 1\)"):
        clamp_x0_prediction(v, x, 0.0, "epsilon")
