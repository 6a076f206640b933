"""course_utils.course.exercises.nb06: the VAE checkers, and the questions with the latent explorer they use."""

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.course.exercises import ExerciseFailed, nb06
from course_utils.models.vae import VAE, VAEConfig


def kl(mean, logvar):
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def test_reparameterisation_checker(stub):
    assert nb06.check_reparameterize(lambda m, lv, e: m + torch.exp(0.5 * lv) * e).status == "correct"
    assert nb06.check_reparameterize(stub).status == "not attempted"
    assert "variance" in nb06.check_reparameterize(lambda m, lv, e: m + lv.exp() * e).message
    assert "Add the mean" in nb06.check_reparameterize(lambda m, lv, e: torch.exp(0.5 * lv) * e).message


def test_kl_checker(stub):
    assert nb06.check_kl(kl).status == "correct"
    assert nb06.check_kl(stub).status == "not attempted"
    assert "Halve" in nb06.check_kl(lambda m, lv: 2 * kl(m, lv)).message
    assert "Sum over" in nb06.check_kl(lambda m, lv: 0.5 * (m**2 + lv.exp() - 1 - lv).flatten(1).mean(1)).message
    assert "-1 per element" in nb06.check_kl(lambda m, lv: 0.5 * (m**2 + lv.exp() - lv).flatten(1).sum(1)).message


def test_scaling_factor_checker(stub):
    assert nb06.check_scaling_factor(lambda z: 1 / z.std()).status == "correct"
    assert nb06.check_scaling_factor(stub).status == "not attempted"
    assert "divides it out" in nb06.check_scaling_factor(lambda z: z.std()).message
    assert "variance" in nb06.check_scaling_factor(lambda z: 1 / z.var()).message


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb06.check_kl(lambda m, lv: m.sum())


@pytest.mark.widgets
def test_questions_and_latent_explorer():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(base_channels=16)).eval()
    images = make_shapes(3, seed=2).images
    from course_utils.course.widgets import LatentExplorer

    explorer = LatentExplorer(vae, images)
    explorer.index.value, explorer.channel.value = 2, 3
    assert explorer.current.shape == (8, 8) and set(explorer.stats) >= {"brightness", "edges"}
    assert "channel 3 of image 2" in explorer.info.value
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        LatentExplorer(vae, images[:, :1])

    r = {"brightness": torch.tensor([0.1, -0.9, 0.3, 0.2]), "red": torch.tensor([0.5, 0.1, 0.6, 0.2])}
    auto = nb06.channel_question(r)  # brightness: channel 1 leads by 0.6, red's leader by only 0.1
    assert "brightness" in auto.children[0].value
    questions = [(auto, "channel 1"), (nb06.channel_question(r, "red"), "channel 2"),
                 (nb06.time_question(), nb06.TIME_OPTIONS[0])]
    for box, right in questions:
        box.field.value = right
        box.check()
        assert box.result.status == "correct"
        box.field.value = [o for o in box.field.options if o != right][0]
        box.check()
        assert box.result.status == "incorrect"
    box = nb06.compression_question(3072, 256)
    box.field.value = "12"
    box.check()
    assert box.result.status == "correct"
