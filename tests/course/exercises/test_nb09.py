"""course_utils.course.exercises.nb09: the sampler checkers agree with the library's samplers; the table question."""

import math

import pytest
import torch

from course_utils import pretrained
from course_utils.course.exercises import nb09
from course_utils.samplers import ConsistencySampler, DDIMSampler, DPMSolverSampler
from course_utils.samplers.consistency import boundary_scalings
from course_utils.schedules import get_schedule

AB = get_schedule("cosine").alphas_cumprod


def my_ddim(x_t, eps, a_t, a_prev, eta, noise):
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * eps + sigma * noise


def test_ddim_checker(stub):
    assert nb09.check_ddim_step(my_ddim).correct
    assert nb09.check_ddim_step(stub).status == "not attempted"

    def no_share(x_t, eps, a_t, a_prev, eta, noise):  # forgets that the added noise takes some variance
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps + sigma * noise

    assert nb09.check_ddim_step(no_share).status == "incorrect"
    assert "sqrt(1 - a_prev - sigma^2)" in nb09.check_ddim_step(no_share).message
    no_noise = lambda x, e, a, ap, eta, z: my_ddim(x, e, a, ap, eta, 0 * z)  # noqa: E731
    assert "fresh noise" in nb09.check_ddim_step(no_noise).message


def test_the_ddim_reference_is_the_library_step():
    s = DDIMSampler(get_schedule("cosine"), clip_sample=False)
    s.set_timesteps(20)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    t = int(s.timesteps[3])
    t_prev = s.previous_timestep(t)
    out = s.step(eps, t, x, eta=0.7, generator=torch.Generator().manual_seed(5)).prev_sample
    z = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    ref = nb09.ddim_update(x, eps, float(AB[t]), float(AB[t_prev]), 0.7, z)
    torch.testing.assert_close(out, ref.float(), atol=1e-5, rtol=1e-5)


def my_dpm(x, d, d_prev, sigma_prev, sigma_s, sigma_t):
    alpha_t, s_t = nb09.alpha_and_s(sigma_t)
    _, s_s = nb09.alpha_and_s(sigma_s)
    lam = nb09.half_log_snr
    h = lam(sigma_t) - lam(sigma_s)
    r = (lam(sigma_s) - lam(sigma_prev)) / h
    return s_t / s_s * x - alpha_t * (math.exp(-h) - 1) * (d + (d - d_prev) / (2 * r))


def test_dpm_checker_and_the_library_agree(stub):
    assert nb09.check_dpm_update(my_dpm).correct
    assert nb09.check_dpm_update(stub).status == "not attempted"
    first = lambda x, d, dp, a, b, c: nb09.dpm_update(x, d, None, a, b, c)  # noqa: E731
    assert "first-order" in nb09.check_dpm_update(first).message
    # The library's second step, fed the same sigmas and predictions, is the reference update.
    s = DPMSolverSampler(get_schedule("cosine"), prediction_type="sample")
    s.set_timesteps(10)
    g = torch.Generator().manual_seed(1)
    x, d0, d1 = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    x1 = s.step(d0, s.timesteps[0], x).prev_sample
    x2 = s.step(d1, s.timesteps[1], x1).prev_sample
    sig = [float(v) for v in s.sigmas[:3]]
    torch.testing.assert_close(x2, nb09.dpm_update(x1, d1, d0, *sig).float(), atol=1e-4, rtol=1e-4)


def my_solver(model_fn, x_T, ab, num_steps, order=2, final="first order", spacing="linspace"):
    """DPM-Solver++(2M) written apart from the notebook, in noise levels sigma = s / alpha as diffusers does;
    ``order``, ``final`` and ``spacing`` make the slips the tests expect to be named."""
    T = len(ab)
    if spacing == "linspace":
        ts = [round(i * (T - 1) / num_steps) for i in range(num_steps, 0, -1)]  # Python's round: half to even
    elif spacing == "ascending":
        ts = [round(i * (T - 1) / num_steps) for i in range(1, num_steps + 1)]
    else:  # leading
        ts = [i * (T // num_steps) for i in range(num_steps - 1, -1, -1)]
    sigmas = [math.sqrt((1 - float(ab[t])) / float(ab[t])) for t in ts] + [0.0]
    lam = [-math.log(v) if v > 0 else math.inf for v in sigmas]
    x, d_prev = x_T, None
    for i, t in enumerate(ts):
        alpha_s = 1 / math.sqrt(1 + sigmas[i] ** 2)
        alpha_t = 1 / math.sqrt(1 + sigmas[i + 1] ** 2)
        d = (x - sigmas[i] * alpha_s * model_fn(x, t)) / alpha_s
        h = lam[i + 1] - lam[i]
        use = d
        if d_prev is not None and order == 2 and (i < num_steps - 1 or final != "first order"):
            use = d + (d - d_prev) * h / (2 * (lam[i] - lam[i - 1]))
        x = (sigmas[i + 1] * alpha_t) / (sigmas[i] * alpha_s) * x - alpha_t * (math.exp(-h) - 1) * use
        d_prev = d
    return x


@pytest.fixture(scope="module")
def digits():
    return pretrained.load("digits-class")


def check(fn, model, **kw):
    return nb09.check_dpm_solver(fn, model, **{"n": 16, "steps": (10,), **kw})


def test_dpm_solver_build_accepts_a_solver_written_apart(digits, stub):
    result = check(my_solver, digits, steps=(10, 20))
    assert result.correct, result.message
    assert "10 steps" in result.message and "digits-FID" in result.message
    assert check(stub, digits).status == "not attempted"
    # the reference loop is the package's sampler and diffusers' scheduler on the toy network
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    toy = nb09.toy_eps(AB)
    for k in (1, 3, 10):
        ref = nb09.dpm_solver(toy, x_T, AB, k)
        torch.testing.assert_close(nb09.package_dpm_solver(toy, x_T, AB, k), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(nb09.diffusers_dpm_solver(toy, x_T, get_schedule("cosine"), k), ref,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(my_solver(toy, x_T, AB, k), ref, atol=1e-5, rtol=1e-5)
    assert nb09.dpm_solver_timesteps(10) == [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]


def test_dpm_solver_build_names_the_slip(digits):
    def hint(fn):
        result = check(fn, digits)
        assert result.status == "incorrect"
        return result.message

    # passes the toy cases (1 and 2 steps are first order anyway), fails agreement with diffusers
    assert "DDIM" in hint(lambda m, x, ab, n: my_solver(m, x, ab, n, order=1))
    assert "ascending" in hint(lambda m, x, ab, n: my_solver(m, x, ab, n, spacing="ascending"))
    assert "'leading'" in hint(lambda m, x, ab, n: my_solver(m, x, ab, n, spacing="leading"))
    assert "lower_order_final" in hint(lambda m, x, ab, n: my_solver(m, x, ab, n, final="second order"))
    twice = lambda m, x, ab, n: my_solver(lambda x, t: (m(x, t), m(x, t))[1], x, ab, n)  # noqa: E731
    assert "once per step" in hint(twice)

    def slipped(slip):
        return lambda m, x, ab, n: nb09.dpm_solver(m, x, ab, n, slip=slip)

    assert "PREVIOUS" in hint(slipped("inverted ratio"))
    assert "noise predictions" in hint(slipped("eps"))
    assert "log-SNR" in hint(slipped("log alpha"))
    assert "forget `return`" in hint(lambda m, x, ab, n: None)


def my_consistency(x_t, eps, t, t_next, ab, noise):
    a = float(ab[t])
    c_skip, c_out = boundary_scalings(t)
    f = c_skip * x_t + c_out * (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    if t_next is None:
        return f
    return math.sqrt(float(ab[t_next])) * f + math.sqrt(1 - float(ab[t_next])) * noise


def test_consistency_checker_and_the_library_agree(stub):
    assert nb09.check_consistency_step(my_consistency, AB).correct
    assert nb09.check_consistency_step(stub, AB).status == "not attempted"
    no_renoise = lambda x, e, t, tn, ab, z: my_consistency(x, e, t, None, ab, z)  # noqa: E731
    assert "noise the estimate back" in nb09.check_consistency_step(no_renoise, AB).message
    ddim_like = lambda x, e, t, tn, ab, z: my_consistency(x, e, t, tn, ab, e)  # noqa: E731
    assert "FRESH noise" in nb09.check_consistency_step(ddim_like, AB).message
    s = ConsistencySampler(get_schedule("cosine"))
    s.set_timesteps(2)  # 999, 499
    g = torch.Generator().manual_seed(2)
    x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    out = s.step(eps, 499, x, generator=torch.Generator().manual_seed(3)).prev_sample  # the last step
    torch.testing.assert_close(out, nb09.consistency_step(x, eps, 499, None, AB, None).float(), atol=1e-5, rtol=1e-5)


NFE = {"DDPM-1000": 1000, "DDIM-10": 10, "DDIM-50": 50, "DPM-Solver++-10": 10, "Heun-Karras-5": 9, "student-2": 2}


def table(**fid_changes):
    fids = {"DDPM-1000": 0.2, "DDIM-10": 0.5, "DDIM-50": 0.25, "DPM-Solver++-10": 0.24, "Heun-Karras-5": 0.26,
            "student-2": 0.4}
    fids.update(fid_changes)
    return [{"label": k, "model": "m", "fid": v, "nfe": NFE[k]} for k, v in fids.items()]


def test_fewest_calls_is_read_from_the_table(answer, each_option):
    assert nb09.fewest_calls(table(), 0.27) == "Heun-Karras"  # 9 calls; the student's 0.4 is over the target
    assert nb09.fewest_calls(table(), 0.245) == "DPM-Solver++"
    assert nb09.fewest_calls(table(**{"student-2": 0.2}), 0.27) == "student"
    with pytest.raises(ValueError, match="at most 0.100"):  # DDPM-1000 (0.2) is no family of the question
        nb09.fewest_calls(table(**{"DDPM-1000": 0.05}), 0.1)
    box = nb09.fewest_calls_question(table(), floor=0.18)  # the target is 1.5 x 0.18 = 0.27: Heun-Karras
    each_option(box, "Heun-Karras", [o for o in nb09.FAMILY_OPTIONS if o != "Heun-Karras"])
    assert "Heun-Karras-5" in answer(box, "Heun-Karras").message and "1.44x the floor" in box.result.message


def test_question_options_fit_on_one_line():
    for options in (nb09.FEW_STEPS_OPTIONS, nb09.FAMILY_OPTIONS):
        assert all(len(o) <= 100 for o in options)
