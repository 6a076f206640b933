"""course_utils.course.exercises.nb06: the VAE build and the scale factor's checkers, and the questions with the latent explorer they use."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.data import make_shapes
from course_utils.course.exercises import ExerciseFailed, nb06
from course_utils.models.vae import VAE, VAEConfig, vae_loss


def sample(mean, logvar, generator):
    eps = torch.randn(mean.shape, generator=generator)
    return mean + torch.exp(0.5 * logvar) * eps


def kl(mean, logvar):
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def make_loss(sample=sample, kl=kl, detach_z=False, beta_on_recon=False, kl_per_example=False):
    """A VAE loss written from the formulas, with optional slips."""
    def loss(model, x, kl_weight=1e-3, generator=None):
        posterior = model.encode(x)
        mean, logvar = posterior.mean, posterior.logvar
        z = sample(mean, logvar, generator)
        recon = F.mse_loss(model.decode(z.detach() if detach_z else z), x)
        k = kl(mean, logvar).mean() / (1 if kl_per_example else mean[0].numel())
        total = kl_weight * recon + k if beta_on_recon else recon + kl_weight * k
        return {"loss": total, "recon": recon, "kl": k}
    return loss


def build(sample=sample, kl=kl, loss=None, **kwargs):
    """The build's checker on a short run (60 steps: the package's loss reaches about 12 dB, a VAE
    that learns nothing the average image's 9.9 dB)."""
    return nb06.check_vae_build(sample, kl, loss or make_loss(sample, kl), steps=60, min_psnr=11.0, **kwargs)


def test_vae_build_accepts_a_build_from_the_formulas(stub):
    result = build()
    assert result.status == "correct", result.message
    assert "held-out" in result.message and "package's loss" in result.message
    assert build(sample=stub).status == "not attempted"
    assert nb06.VAE_BUILD.graded_on and "PSNR" in str(nb06.VAE_BUILD)


def test_vae_build_names_each_slip_of_the_sampling():
    def variance(mean, logvar, generator):
        return mean + logvar.exp() * torch.randn(mean.shape, generator=generator)

    def global_generator(mean, logvar, generator):
        return mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape)

    def no_sampling(mean, logvar, generator):
        return mean

    def torch_normal(mean, logvar, generator):
        return torch.normal(mean, torch.exp(0.5 * logvar), generator=generator)

    assert "variance" in build(sample=variance).message
    assert "global" in build(sample=global_generator).message
    assert "nothing was sampled" in build(sample=no_sampling).message
    assert "torch.normal" in build(sample=torch_normal).message


def test_vae_build_names_each_slip_of_the_kl_and_the_loss():
    def flipped(mean, logvar):
        return -kl(mean, logvar)

    def no_minus_one(mean, logvar):
        return 0.5 * (mean**2 + logvar.exp() - logvar).flatten(1).sum(1)

    def no_logvar(mean, logvar):
        return 0.5 * (mean**2 + logvar.exp() - 1).flatten(1).sum(1)

    assert "sign is flipped" in build(kl=flipped).message
    assert "-1 per element" in build(kl=no_minus_one).message
    assert "-logvar term" in build(kl=no_logvar).message
    assert "not the reconstruction" in build(loss=make_loss(beta_on_recon=True)).message
    assert "per latent number" in build(loss=make_loss(kl_per_example=True)).message
    assert "forget `return`" in build(loss=lambda *a, **k: None).message
    assert "Return a dict" in build(loss=lambda model, x, **k: make_loss()(model, x, **k)["loss"]).message


def test_vae_build_fails_a_loss_that_does_not_train_the_encoder_at_the_outcome():
    result = build(loss=make_loss(detach_z=True))  # the right value on one batch, no gradient to the encoder
    assert result.status == "incorrect"
    assert "below the 11 dB required" in result.message and ".detach()" in result.message


def test_train_vae_takes_a_loss():
    from course_utils import latent

    calls = []

    def counting_loss(*args, **kwargs):
        calls.append(1)
        return vae_loss(*args, **kwargs)

    latent.train_vae(make_shapes(4, seed=0).images, config=nb06.SHORT_VAE, steps=2, batch_size=2, progress=False,
                     loss_fn=counting_loss)
    assert len(calls) == 2
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        latent.train_vae(make_shapes(4, seed=0).images, config=nb06.SHORT_VAE, steps=1, loss_fn="mse")


def test_scaling_factor_checker(stub):
    assert nb06.check_scaling_factor(lambda z: 1 / z.std()).status == "correct"
    assert nb06.check_scaling_factor(stub).status == "not attempted"
    assert "divides it out" in nb06.check_scaling_factor(lambda z: z.std()).message
    assert "variance" in nb06.check_scaling_factor(lambda z: 1 / z.var()).message


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb06.check_scaling_factor(lambda z: z.max())


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
