"""A small KL autoencoder, the "VAE" of latent diffusion, written from scratch.

The encoder maps an image ``(B, C, H, W)`` to a diagonal Gaussian over latents
``(B, latent_channels, H / f, W / f)`` with ``f = 2 ** (len(channel_mults) - 1)``; the decoder maps
latents back to an image. Training minimises reconstruction error plus a small multiple of the KL
divergence from N(0, I) (Kingma & Welling 2014, Eq. (10); Rombach et al. 2022, Sec. 3, keep the KL
weight small so the latents keep the image's detail).

Names follow diffusers' ``AutoencoderKL`` where they exist: ``encode``, ``decode``,
``latent_channels``, ``scaling_factor`` (latents are multiplied by it before diffusion so their
standard deviation is about 1, and divided by it before decoding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_levels
from .unet import Downsample, Upsample


@dataclass(frozen=True)
class VAEConfig:
    """Everything that defines the autoencoder's shape. Frozen: build a new one to change it."""

    sample_size: int = 32
    in_channels: int = 3
    latent_channels: int = 4
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)  # one level per entry; each but the last halves H and W
    groups: int = 8
    scaling_factor: float = 1.0  # set from the trained encoder's latent std (1 / std)

    def __post_init__(self):
        check_levels(self.channel_mults, self.sample_size)
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.groups:
                raise ValueError(f"channels {self.base_channels * mult} must be divisible by groups ({self.groups}).")
        if self.latent_channels < 1 or not self.scaling_factor > 0:
            raise ValueError("latent_channels must be >= 1 and scaling_factor positive, got "
                             f"{self.latent_channels} and {self.scaling_factor}.")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        return cls(**(dict(d) | {"channel_mults": tuple(d["channel_mults"])}))


VAE_PRESETS: dict[str, VAEConfig] = {
    # 32x32x3 = 3,072 numbers -> 8x8x4 = 256 latents: 12x fewer, as SD's 512x512x3 -> 64x64x4 is 48x.
    # 0.4M parameters; narrow at full resolution (16 channels) so a 2-core CPU trains it in minutes.
    "shapes-vae": VAEConfig(),
}


class DiagonalGaussian:
    """``q(z | x) = N(mean, diag(exp(logvar)))`` over latents ``(B, C, h, w)`` (diffusers'
    ``DiagonalGaussianDistribution``); ``logvar`` is clamped to [-30, 20] as there."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The reparameterisation ``z = mean + std * e``, ``e ~ N(0, I)``: differentiable in both."""
        e = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * e

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """``KL(q || N(0, I))`` per example, summed over latent elements: ``(B,)``.

        Closed form for diagonal Gaussians: ``0.5 * sum(mean^2 + var - 1 - logvar)``.
        """
        return 0.5 * (self.mean**2 + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)


class VAEResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, plus a skip (the U-Net's block without a timestep)."""

    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = self.conv2(F.silu(self.norm2(h)))  # (B, out, H, W)
        return self.shortcut(x) + h  # (B, out, H, W)


class Autoencoder(nn.Module):
    """What latent diffusion needs from an autoencoder: ``encode`` to a ``DiagonalGaussian``,
    ``decode``, ``latent_shape`` and ``config`` (a ``VAEConfig``, for ``scaling_factor``)."""

    config: VAEConfig

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(latent_channels, h, w)`` of one image's latent."""
        side = self.config.sample_size // self.config.downsample_factor
        return (self.config.latent_channels, side, side)

    def _check(self, x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"expected {what} of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}.")

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sample_posterior: bool = True) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Reconstruct ``x`` through a latent drawn from (or the mean of) its posterior."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class VAE(Autoencoder):
    """Encoder to a ``DiagonalGaussian`` over latents, and a decoder back to pixels.

    Args:
        config: a ``VAEConfig`` or the name of a preset in ``VAE_PRESETS``.
    """

    def __init__(self, config: VAEConfig | str = "shapes-vae"):
        super().__init__()
        if isinstance(config, str):
            check_choice("VAE preset", config, VAE_PRESETS)
            config = VAE_PRESETS[config]
        self.config = cfg = config
        chs = [cfg.base_channels * m for m in cfg.channel_mults]
        last = len(chs) - 1
        enc = [nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)]
        for i, ch in enumerate(chs):
            enc.append(VAEResBlock(chs[max(i - 1, 0)], ch, cfg.groups))
            if i < last:
                enc.append(Downsample(ch))
        enc += [VAEResBlock(chs[-1], chs[-1], cfg.groups), nn.GroupNorm(cfg.groups, chs[-1]), nn.SiLU(),
                nn.Conv2d(chs[-1], 2 * cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(cfg.latent_channels, chs[-1], 3, padding=1), VAEResBlock(chs[-1], chs[-1], cfg.groups)]
        for i in reversed(range(len(chs))):
            dec.append(VAEResBlock(chs[min(i + 1, last)], chs[i], cfg.groups))
            if i > 0:
                dec.append(Upsample(chs[i]))
        dec += [nn.GroupNorm(cfg.groups, chs[0]), nn.SiLU(), nn.Conv2d(chs[0], cfg.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """``(B, C, H, W)`` images in [-1, 1] -> the posterior over ``(B, *latent_shape)`` latents."""
        c = self.config
        self._check(x, (c.in_channels, c.sample_size, c.sample_size), "images")
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # 2 x (B, latent_channels, h, w)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, *latent_shape)`` latents (unscaled) -> ``(B, C, H, W)`` reconstructions."""
        self._check(z, self.latent_shape, "latents")
        return self.decoder(z)


def vae_loss(model: Autoencoder, x: torch.Tensor, kl_weight: float = 1e-3,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``loss = recon + kl_weight * kl`` for one batch; returns all three (scalars).

    ``recon``: mean squared error per pixel; ``kl``: the posterior's KL per latent element, so
    the weight does not depend on the image or latent size.
    """
    if not kl_weight >= 0:
        raise ValueError(f"kl_weight must be >= 0, got {kl_weight}.")
    recon_x, posterior = model(x, generator=generator)
    recon = F.mse_loss(recon_x, x)
    kl = posterior.kl().mean() / posterior.mean[0].numel()
    return {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl}


class DiffusersVAE(Autoencoder):
    """diffusers' ``AutoencoderKL`` behind this module's interface (``encode`` -> ``DiagonalGaussian``,
    ``decode``, ``latent_shape``, ``config.scaling_factor``), so notebook code runs on either.

    Offline, build one from a small config; online (Colab), ``DiffusersVAE.from_pretrained
    ("stabilityai/sd-vae-ft-mse")`` loads Stable Diffusion's VAE (512x512x3 -> 64x64x4, scaling
    factor 0.18215).
    """

    def __init__(self, autoencoder, sample_size: int):
        super().__init__()
        self.autoencoder = autoencoder
        c = autoencoder.config
        self.config = VAEConfig(sample_size=sample_size, in_channels=c.in_channels, latent_channels=c.latent_channels,
                                base_channels=c.block_out_channels[0], groups=c.norm_num_groups,
                                channel_mults=tuple(ch // c.block_out_channels[0] for ch in c.block_out_channels),
                                scaling_factor=float(c.scaling_factor))

    @classmethod
    def from_pretrained(cls, repo_id: str, sample_size: int = 512, **kwargs) -> "DiffusersVAE":
        """Download (needs the internet) and wrap a pretrained ``AutoencoderKL``."""
        from diffusers import AutoencoderKL

        return cls(AutoencoderKL.from_pretrained(repo_id, **kwargs), sample_size)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        c = self.config
        self._check(x, (c.in_channels, c.sample_size, c.sample_size), "images")
        dist = self.autoencoder.encode(x).latent_dist
        return DiagonalGaussian(dist.mean, dist.logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z, self.latent_shape, "latents")
        return self.autoencoder.decode(z).sample
