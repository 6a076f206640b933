"""course_utils.models.vae: the KL autoencoder's shapes, the Gaussian posterior's maths, and that it learns."""

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.models.vae import VAE, VAE_PRESETS, DiagonalGaussian, VAEConfig, vae_loss


def small() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(base_channels=16, channel_mults=(1, 2, 2)))


def test_shapes_through_encoder_and_decoder():
    vae = small()
    x = make_shapes(3, seed=0).images  # (3, 3, 32, 32)
    posterior = vae.encode(x)
    assert vae.latent_shape == (4, 8, 8) and posterior.mean.shape == posterior.logvar.shape == (3, 4, 8, 8)
    assert vae.decode(posterior.sample()).shape == x.shape
    recon, _ = vae(x, sample_posterior=False)
    torch.testing.assert_close(recon, vae.decode(posterior.mode()))
    assert VAE("shapes-vae").latent_shape == (4, 8, 8) and set(VAE_PRESETS) == {"shapes-vae"}


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(2, 1, 2, 2, generator=g), torch.randn(2, 1, 2, 2, generator=g) * 0.5
    q = DiagonalGaussian(mean, logvar)
    z = torch.stack([q.sample(g) for _ in range(40000)])  # (S, 2, 1, 2, 2)
    log_q = -0.5 * (((z - mean) ** 2) / logvar.exp() + logvar).flatten(2).sum(2)
    log_p = -0.5 * (z**2).flatten(2).sum(2)  # the shared log(2 pi) terms cancel
    torch.testing.assert_close(q.kl(), (log_q - log_p).mean(0), atol=0.03, rtol=0.03)
    assert torch.equal(DiagonalGaussian(torch.zeros(1, 4), torch.zeros(1, 4)).kl(), torch.zeros(1))


def test_reparameterised_sample_has_the_right_moments_and_gradients():
    mean = torch.full((20000, 1), 2.0, requires_grad=True)
    logvar = torch.full((20000, 1), torch.log(torch.tensor(0.25)).item(), requires_grad=True)
    z = DiagonalGaussian(mean, logvar).sample(torch.Generator().manual_seed(1))
    assert abs(z.mean().item() - 2.0) < 0.01 and abs(z.std().item() - 0.5) < 0.01
    z.sum().backward()
    assert mean.grad is not None and logvar.grad is not None  # differentiable in both


def test_logvar_is_clamped_as_in_diffusers():
    q = DiagonalGaussian(torch.zeros(1, 2), torch.tensor([[-100.0, 100.0]]))
    assert q.logvar.tolist() == [[-30.0, 20.0]] and torch.isfinite(q.kl()).all()


def test_a_few_steps_reduce_the_loss():
    vae = small()
    x = make_shapes(64, seed=0).images
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    first = vae_loss(vae, x, generator=g)
    for _ in range(30):
        loss = vae_loss(vae, x, generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = vae_loss(vae, x, generator=g)
    assert last["recon"] < 0.5 * first["recon"] and set(last) == {"loss", "recon", "kl"}


@pytest.mark.parametrize("make, match", [
    (lambda: VAE("sd-vae"), "Accepted: 'shapes-vae'"),
    (lambda: VAEConfig(sample_size=30), "divisible by 2"),
    (lambda: VAEConfig(base_channels=12), "divisible by groups"),
    (lambda: VAEConfig(scaling_factor=0.0), "scaling_factor positive"),
    (lambda: small().encode(torch.zeros(2, 1, 32, 32)), r"\(B, 3, 32, 32\)"),
    (lambda: small().decode(torch.zeros(2, 4, 16, 16)), r"\(B, 4, 8, 8\)"),
    (lambda: vae_loss(small(), torch.zeros(1, 3, 32, 32), kl_weight=-1), "kl_weight"),
])
def test_bad_input_is_refused_clearly(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_diffusers_autoencoder_behind_the_same_interface():
    from diffusers import AutoencoderKL

    from course_utils.models.vae import DiffusersVAE

    torch.manual_seed(0)
    ae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                       down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                       layers_per_block=1, norm_num_groups=8, sample_size=32, scaling_factor=0.5).eval()
    vae = DiffusersVAE(ae, sample_size=32)
    x = make_shapes(2, seed=0).images
    assert vae.latent_shape == (4, 16, 16) and vae.config.scaling_factor == 0.5
    with torch.no_grad():
        posterior = vae.encode(x)
        dist = ae.encode(x).latent_dist
        torch.testing.assert_close(posterior.mean, dist.mean)
        torch.testing.assert_close(posterior.kl(), dist.kl())  # the same closed form as diffusers'
        torch.testing.assert_close(vae.decode(posterior.mode()), ae.decode(dist.mode()).sample)
        recon, _ = vae(x, sample_posterior=False)
    assert recon.shape == x.shape
    with pytest.raises(ValueError, match=r"\(B, 4, 16, 16\)"):
        vae.decode(torch.zeros(1, 4, 8, 8))


def test_from_pretrained_loads_a_saved_autoencoder(tmp_path):
    # The online path (Stable Diffusion's VAE by repo id) goes through the same from_pretrained call;
    # here it reads a small AutoencoderKL the test saves, so no network is needed.
    from diffusers import AutoencoderKL

    from course_utils.models.vae import DiffusersVAE

    torch.manual_seed(0)
    ae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                       down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                       layers_per_block=1, norm_num_groups=8, sample_size=32, scaling_factor=0.25).eval()
    ae.save_pretrained(tmp_path / "tiny-vae")  # config.json + diffusion_pytorch_model.safetensors
    vae = DiffusersVAE.from_pretrained(str(tmp_path / "tiny-vae"), sample_size=32).eval()
    assert vae.config.scaling_factor == 0.25 and vae.latent_shape == (4, 16, 16)
    x = make_shapes(2, seed=0).images
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(x).mean, ae.encode(x).latent_dist.mean)


def test_vae_preset_is_what_the_shipped_model_uses():
    vae = VAE("shapes-vae")
    assert vae.latent_shape == (4, 8, 8) and vae.config.downsample_factor == 4
