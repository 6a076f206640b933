"""course_utils.guidance: adaptive projected guidance (Sadat et al. 2024, Algorithm 1) and the guidance
interval (Kynkaanniemi et al. 2024): reductions to CFG, the geometry of the update, the momentum's
state, the interval's on/off behaviour, and the errors of the wrappers and of ``DiffusionModel.sample``."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils.guidance import AdaptiveProjectedGuidance, ClassifierFreeGuidance, make_guidance, project
from course_utils.parameterization import flow_to_x0, to_x0
from course_utils.pipeline import DiffusionModel
from course_utils.schedules import get_schedule
from tests.test_fuzz_api import _only_documented, anything
from tests.test_guidance import CountingCalls

SCHEDULE = get_schedule("cosine", 1000)
PLAIN = {"eta": 1.0, "norm_threshold": None, "momentum": 0.0}  # APG with every change switched off: CFG
LABELS = torch.tensor([0, 3, 9])


def inputs(t=(600, 600, 600)):
    g = torch.Generator().manual_seed(2)
    return torch.randn(3, 1, 16, 16, generator=g), torch.tensor(t)


def apg(net, w=7.0, prediction_type="epsilon", **options):
    schedule = None if prediction_type == "flow" else SCHEDULE
    return AdaptiveProjectedGuidance(net, w, schedule, prediction_type, **options)


def x0_of(out, x, t, prediction_type="epsilon"):
    """The x0 a prediction implies (float64), as APG reads it; ``t`` one timestep for the batch."""
    if prediction_type == "flow":
        return flow_to_x0(out.double(), x.double(), t / 1000)
    a = SCHEDULE.alphas_cumprod[t]
    return to_x0(out.double(), x.double(), a.sqrt(), (1 - a).sqrt(), prediction_type)


def passes(net, x, t):
    """(conditional, unconditional) predictions of ``net`` for LABELS."""
    return net(x, t, class_labels=LABELS), net(x, t, class_labels=torch.full((3,), 10))


@torch.no_grad()
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "flow"])
@pytest.mark.parametrize("w", [0.0, 3.0, 15.0])
def test_eta_one_without_threshold_or_momentum_is_cfg(class_unet, prediction_type, w):
    # D = D_c + (w - 1) (D_c - D_u) is CFG on x0, and x0 is affine in the prediction at a fixed x_t,
    # so converting back gives eps_u + w (eps_c - eps_u) (for every prediction type) up to rounding.
    x, t = inputs((300, 300, 300))
    want = ClassifierFreeGuidance(class_unet, w)(x, t, class_labels=LABELS)
    got = apg(class_unet, w, prediction_type, **PLAIN)(x, t, class_labels=LABELS)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "flow"])
def test_eta_zero_moves_x0_orthogonally_to_the_conditional_x0(class_unet, prediction_type):
    x, t = inputs()
    cond, uncond = passes(class_unet, x, t)
    got = apg(class_unet, 7.0, prediction_type, norm_threshold=None, momentum=0.0)(x, t, class_labels=LABELS)
    d_c, d_u, d = (x0_of(p, x, 600, prediction_type) for p in (cond, uncond, got))
    step = (d - d_c).flatten(1)  # (B, 256): (w - 1) times the orthogonal part of D_c - D_u
    cosine = (step * d_c.flatten(1)).sum(1) / (step.norm(dim=1) * d_c.flatten(1).norm(dim=1))
    assert cosine.abs().max() < 1e-5 and step.norm(dim=1).min() > 1e-3  # orthogonal, and not zero
    _, orth = project(d_c - d_u, d_c)
    torch.testing.assert_close(step, 6.0 * orth.flatten(1), atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_the_update_is_linear_in_eta_and_the_parts_add_up(class_unet):
    x, t = inputs()
    out = {eta: apg(class_unet, 5.0, eta=eta, norm_threshold=None, momentum=0.0)(x, t, class_labels=LABELS)
           for eta in (0.0, 0.5, 1.0)}
    torch.testing.assert_close(out[0.5], (out[0.0] + out[1.0]) / 2, atol=1e-5, rtol=1e-5)
    v, onto = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.randn(4, 1, 8, 8, dtype=torch.float64)
    par, orth = project(v, onto)
    torch.testing.assert_close(par + orth, v)
    assert (orth * onto).sum((1, 2, 3)).abs().max() < 1e-10


@torch.no_grad()
def test_the_norm_threshold_caps_the_update_per_example(class_unet):
    x, t = inputs()
    d_c, d_u = (x0_of(p, x, 600) for p in passes(class_unet, x, t))
    full = (d_c - d_u).flatten(1).norm(dim=1)  # (B,) ||D_c - D_u||
    for r in (0.01, 0.1, float(full.median())):  # the last caps some examples and leaves the others
        got = apg(class_unet, 11.0, eta=1.0, norm_threshold=r, momentum=0.0)(x, t, class_labels=LABELS)
        norms = (x0_of(got, x, 600) - d_c).flatten(1).norm(dim=1)  # (w - 1) min(||D_c - D_u||, r) with eta = 1
        torch.testing.assert_close(norms, 10.0 * full.clamp(max=r), atol=1e-4, rtol=1e-4)
    huge = apg(class_unet, 11.0, eta=1.0, norm_threshold=1e9, momentum=0.0)(x, t, class_labels=LABELS)
    torch.testing.assert_close(huge, apg(class_unet, 11.0, **PLAIN)(x, t, class_labels=LABELS))


@torch.no_grad()
def test_momentum_adds_the_running_update_and_a_new_run_starts_afresh(class_unet):
    x = inputs()[0]
    beta, w = -0.5, 4.0
    guided = apg(class_unet, w, eta=1.0, norm_threshold=None, momentum=beta)
    first = [guided(x, torch.tensor(t), class_labels=LABELS) for t in (700, 500)]  # one run: t goes down
    d = {t: [x0_of(p, x, t) for p in passes(class_unet, x, torch.tensor(t))] for t in (700, 500)}
    running = (d[500][0] - d[500][1]) + beta * (d[700][0] - d[700][1])
    torch.testing.assert_close(x0_of(first[1], x, 500), d[500][0] + (w - 1) * running, atol=1e-4, rtol=1e-4)
    again = guided(x, torch.tensor(700), class_labels=LABELS)  # t went up: a new run
    torch.testing.assert_close(again, first[0])
    guided(x, torch.tensor(500), class_labels=LABELS)
    guided.reset()  # explicit: the same step again, with no memory
    torch.testing.assert_close(guided(x, torch.tensor(500), class_labels=LABELS),
                               apg(class_unet, w, eta=1.0, norm_threshold=None, momentum=beta)(
                                   x, torch.tensor(500), class_labels=LABELS))
    assert guided(x[:2], torch.tensor(400), class_labels=LABELS[:2]).shape == (2, 1, 16, 16)  # new shape: afresh


@torch.no_grad()
@pytest.mark.parametrize("method", ["cfg", "apg"])
def test_the_interval_guides_inside_and_is_the_conditional_model_outside(class_unet, method):
    x, _ = inputs()
    counted = CountingCalls(class_unet)
    options = {"interval": (200, 600)} | (PLAIN if method == "apg" else {})
    wrapper = make_guidance(method, counted, 7.0, SCHEDULE, "epsilon", options)
    always = ClassifierFreeGuidance(class_unet, 7.0)
    for t, inside in ((100, False), (200, True), (600, True), (601, False), (999, False)):
        tt = torch.tensor(t)
        cond, _ = passes(class_unet, x, tt)
        want = always(x, tt, class_labels=LABELS) if inside else cond
        counted.calls.clear()
        torch.testing.assert_close(wrapper(x, tt, class_labels=LABELS), want, atol=1e-5, rtol=1e-5)
        assert [b for b, _ in counted.calls] == [6 if inside else 3]  # outside: one pass of the batch
    t = torch.tensor([100, 400, 900])  # a timestep per example: each guided or not by its own
    got = wrapper(x, t, class_labels=LABELS)
    torch.testing.assert_close(got[1], always(x, t, class_labels=LABELS)[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[[0, 2]], class_unet(x, t, class_labels=LABELS)[[0, 2]], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_sample_takes_apg_by_name_and_plain_apg_draws_cfg_samples(class_unet):
    model = DiffusionModel(class_unet, get_schedule("cosine", 100), info={"name": "t", "conditioning": "class"})

    def draw(**kw):
        return model.sample(4, steps=5, labels=[1, 2, 3, 4], guidance_scale=9.0, batch_size=2,
                            generator=torch.Generator().manual_seed(0), **kw)

    cfg = draw()
    torch.testing.assert_close(draw(guidance="apg", guidance_options=PLAIN), cfg, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(draw(guidance="apg"), cfg, atol=1e-3)
    torch.testing.assert_close(draw(guidance="cfg", guidance_options={"interval": (0, 1000)}), cfg)


@pytest.mark.parametrize("options, error, words", [
    ({"eta": 1.5}, ValueError, "eta must lie in [0, 1]"),
    ({"eta": "0"}, TypeError, "eta must be"),
    ({"momentum": -1.0}, ValueError, "momentum must lie in (-1, 1)"),
    ({"norm_threshold": 0.0}, ValueError, "norm_threshold must be a positive number"),
    ({"interval": (600, 200)}, ValueError, "interval's t_hi must lie in [600, inf)"),
    ({"interval": (-1, 200)}, ValueError, "interval's t_lo must be a number >= 0"),
    ({"interval": 500}, TypeError, "interval must be None or a pair (t_lo, t_hi)"),
    ({"beta": -0.5}, ValueError, "guidance_options ['beta'] are not options of guidance='apg'"),
])
def test_bad_apg_options_are_refused_by_name(class_unet, options, error, words):
    with pytest.raises(error) as info:
        make_guidance("apg", class_unet, 5.0, SCHEDULE, "epsilon", options)
    assert words in str(info.value)


def test_bad_guidance_choices_are_refused_by_name(class_unet):
    with pytest.raises(ValueError, match="Unknown guidance 'pag'. Accepted: 'cfg', 'apg'"):
        make_guidance("pag", class_unet, 5.0)
    with pytest.raises(ValueError, match=r"\['eta'\] are not options of guidance='cfg'; it takes \['interval'\]"):
        make_guidance("cfg", class_unet, 5.0, options={"eta": 0.0})
    with pytest.raises(TypeError, match="guidance_options must be a dict"):
        make_guidance("apg", class_unet, 5.0, SCHEDULE, options=[("eta", 0.0)])
    with pytest.raises(ValueError, match="Unknown prediction_type 'x0'"):
        AdaptiveProjectedGuidance(class_unet, 5.0, SCHEDULE, "x0")
    with pytest.raises(ValueError, match="APG needs the noise schedule"):
        AdaptiveProjectedGuidance(class_unet, 5.0, None, "epsilon")
    model = DiffusionModel(class_unet, SCHEDULE, info={"name": "t", "conditioning": "class"})
    with pytest.raises(ValueError, match="guidance='apg' needs a condition to guide towards: pass labels"):
        model.sample(2, steps=2, guidance="apg")
    with pytest.raises(ValueError, match=r"guidance='cfg' with guidance_options=\{'interval': \(0, 9\)\} needs a cond"):
        model.sample(2, steps=2, guidance_options={"interval": (0, 9)})
    with pytest.raises(ValueError, match="Unknown guidance 'APG '"):
        model.sample(2, steps=2, labels=1, guidance="APG ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=anything, where=st.sampled_from(["guidance", "guidance_options", "eta", "norm_threshold", "momentum",
                                              "interval"]))
def test_any_wrong_guidance_input_raises_a_documented_error(class_unet, value, where):
    model = DiffusionModel(class_unet, get_schedule("cosine", 20), info={"name": "t", "conditioning": "class"})
    if where in ("guidance", "guidance_options"):
        args = {"guidance": "apg", where: value}
    else:
        args = {"guidance": "apg", "guidance_options": {where: value}}
    _only_documented(lambda: model.sample(2, steps=2, labels=1, guidance_scale=5.0, **args))
