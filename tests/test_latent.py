"""course_utils.latent: VAE training, the scale factor, encode/decode, channel correlations, latent sampling."""

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.latent import (decode, encode, finetune_decoder, image_features, latent_channel_correlations,
                                 latent_scaling_factor, numbers_per_image, reconstruction_error, train_vae)
from course_utils.models import DiT, DiTConfig, UNet
from course_utils.models.vae import VAEConfig
from course_utils.pipeline import DiffusionModel
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, train
from tests.helpers import latent_unet, random_weights

SMALL = VAEConfig()  # the shapes-vae preset: smaller ones sit on the "mean colour" plateau for 40 steps


@pytest.fixture(scope="module")
def trained():
    data = make_shapes(256, seed=0).images
    return train_vae(data, SMALL, steps=40, batch_size=32, lr=2e-3, progress=False, log_every=10)


def test_train_vae_learns_and_sets_the_scale_factor(trained):
    rows = trained.losses
    assert len(rows) == 4 and rows[-1][2] < 0.6 * rows[0][2]  # 40 steps take the error about halfway down
    data = make_shapes(256, seed=0).images
    # The factor is 1 / std of the posterior means of the first 2,000 (here all 256) training images.
    z = encode(trained.model, data)  # scaled
    assert z.std().item() == pytest.approx(1.0, abs=1e-4)
    assert trained.model.config.scaling_factor == pytest.approx(latent_scaling_factor(trained.model, data), rel=1e-6)


def test_encode_decode_round_trip_and_scaling(trained):
    vae, x = trained.model, make_shapes(5, seed=3).images
    z = encode(vae, x, scaled=False)
    assert z.shape == (5, 4, 8, 8)
    torch.testing.assert_close(encode(vae, x), z * vae.config.scaling_factor)
    torch.testing.assert_close(decode(vae, z * vae.config.scaling_factor), decode(vae, z, scaled=False))
    out = decode(vae, z, scaled=False, batch_size=2)  # batching does not change the result
    torch.testing.assert_close(out, decode(vae, z, scaled=False))
    assert out.shape == x.shape and out.abs().max() <= 1
    err = reconstruction_error(vae, x)
    assert err["mse"] == pytest.approx(float((out - x).pow(2).mean()), rel=1e-5) and err["n"] == 5
    assert err["psnr_db"] == pytest.approx(10 * torch.log10(torch.tensor(4 / err["mse"])).item(), rel=1e-5)
    assert numbers_per_image(vae) == {"pixels": 3072, "latents": 256, "compression": 12}


def test_low_precision_decode_stays_close(trained):
    z = encode(trained.model, make_shapes(4, seed=4).images)
    ref = decode(trained.model, z)
    for dtype, tol in ((torch.bfloat16, 0.1), (torch.float16, 0.02)):
        low = decode(trained.model, z, dtype=dtype)
        assert low.dtype == torch.float32 and (low - ref).abs().max() < tol
    assert next(trained.model.parameters()).dtype == torch.float32  # the model itself is untouched


def test_train_vae_in_bf16_learns_as_fp32_does_and_refuses_an_unknown_precision():
    # bf16 autocast (notebook 06's cpu mode where the chip computes it natively): the same run, the weights kept
    # in fp32, the reconstruction error falling as in fp32.
    data = make_shapes(256, seed=0).images
    runs = {p: train_vae(data, SMALL, steps=40, batch_size=32, lr=2e-3, progress=False, log_every=10, precision=p)
            for p in ("fp32", "bf16")}
    assert next(runs["bf16"].model.parameters()).dtype == torch.float32
    fp32, bf16 = runs["fp32"].losses[-1][2], runs["bf16"].losses[-1][2]
    assert bf16 < 0.6 * runs["bf16"].losses[0][2] and bf16 == pytest.approx(fp32, rel=0.2)
    with pytest.raises(ValueError, match="precision.*fp16"):
        train_vae(data, SMALL, steps=1, progress=False, precision="fp16")


def test_finetune_decoder_keeps_every_latent_and_reconstructs_better(trained):
    # Stable Diffusion's sd-vae-ft-mse recipe: only the decoder trains, so a latent model trained on the old
    # latents still fits; the VAE passed in is left as it was.
    data, held_out = make_shapes(256, seed=0).images, make_shapes(64, seed=1).images
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    tuned = finetune_decoder(trained.model, data, steps=40, batch_size=32, lr=1e-3, progress=False, log_every=10)
    assert all(torch.equal(v, trained.model.state_dict()[k]) for k, v in before.items())
    assert tuned.model.config.scaling_factor == trained.model.config.scaling_factor
    torch.testing.assert_close(encode(tuned.model, held_out), encode(trained.model, held_out), rtol=0, atol=0)
    assert all(p.requires_grad for p in tuned.model.parameters())  # nothing left frozen for the caller
    assert len(tuned.losses) == 4 and tuned.losses[-1][2] < tuned.losses[0][2]
    assert reconstruction_error(tuned.model, held_out)["mse"] < 0.9 * reconstruction_error(trained.model, held_out)["mse"]
    assert tuned.losses[-1][1] == tuned.losses[-1][2] and tuned.losses[-1][3] > 0  # loss = recon; kl for reference


def test_finetune_decoder_names_what_it_refuses(trained):
    data = make_shapes(8, seed=0).images
    with pytest.raises(TypeError, match="vae must be a course_utils VAE.*Linear"):
        finetune_decoder(torch.nn.Linear(2, 2), data, steps=1, progress=False)
    with pytest.raises(ValueError, match="precision.*fp16"):
        finetune_decoder(trained.model, data, steps=1, progress=False, precision="fp16")
    with pytest.raises(ValueError, match="steps"):
        finetune_decoder(trained.model, data, steps=0, progress=False)


def test_train_refuses_bad_images_and_accepts_unbounded_latents():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train_vae(torch.full((4, 3, 32, 32), 2.0), SMALL, steps=1, progress=False)
    net = latent_unet()
    latents = 3 * torch.randn(16, 4, 8, 8)  # std 3: outside [-1, 1]
    cfg = TrainConfig(steps=2, batch_size=4, log_every=1)
    with pytest.raises(ValueError, match="value_range=None"):
        train(net, latents, get_schedule("cosine", 100), cfg, progress=False)
    assert train(net, latents, get_schedule("cosine", 100), cfg, progress=False, value_range=None).step == 2


@pytest.mark.parametrize("arch", ["unet", "dit"])
def test_latent_diffusion_model_samples_latents_and_decodes_them(trained, arch):
    vae = trained.model
    torch.manual_seed(0)
    if arch == "unet":
        net = latent_unet()
    else:
        net = DiT(DiTConfig(sample_size=8, in_channels=4, patch_size=1, hidden_size=32, depth=1))
    random_weights(net, std=0.02)  # a non-zero output, so that the latents are not just the noise
    model = DiffusionModel(net, get_schedule("cosine", 100), vae=vae, info={"name": "latent"})
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    latents = model.sample(3, steps=4, generator=g(), output="latents")
    images = model.sample(3, steps=4, generator=g())
    assert latents.shape == (3, 4, 8, 8) and images.shape == (3, 3, 32, 32)
    torch.testing.assert_close(images, decode(vae, latents))
    assert latents.abs().max() > 1  # latents are not clamped to [-1, 1] (clip_sample is off for them)
    with pytest.raises(ValueError, match="'images', 'latents'"):
        model.sample(1, steps=2, output="pixels")
    with pytest.raises(ValueError, match="Accepted: 'images'"):
        DiffusionModel(UNet("digits-tiny"), get_schedule("cosine", 100)).sample(1, steps=2, output="latents")
    with pytest.raises(ValueError, match="latents are"):
        DiffusionModel(UNet("digits-tiny"), get_schedule("cosine", 100), vae=vae)


def test_latent_channel_correlations_find_a_planted_channel():
    images = make_shapes(16, seed=0).images  # (16, 3, 32, 32)
    feats = image_features(images, 8)
    noise = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(0))
    # Channel 0 copies brightness, channel 1 is minus the red channel, channel 2 is noise.
    latents = torch.stack([3 * feats["brightness"] + 1, -feats["red"], noise], dim=1)  # (16, 3, 8, 8)
    r = latent_channel_correlations(latents, images)
    assert r["brightness"][0] == pytest.approx(1.0, abs=1e-5) and r["red"][1] == pytest.approx(-1.0, abs=1e-5)
    assert abs(float(r["brightness"][2])) < 0.3 and set(r) == {"brightness", "red", "green", "blue", "edges"}
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        latent_channel_correlations(latents[:3], images)
