"""Recipes: how each shipped checkpoint is made, so ``python -m course_utils.train NAME`` can
reproduce it from scratch. One frozen record per checkpoint; no configuration files."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ._validation import check_choice
from .families import CONSISTENCY, DIFFUSION, FLOW_MATCHING
from .training import TrainConfig

DIFFUSION_METHODS = {DIFFUSION: "ddpm", FLOW_MATCHING: "flow_matching", CONSISTENCY: "consistency"}  # family -> the
# manifest's "method" of a diffusion checkpoint (its model family is train.objective; the method names it for cards)


@dataclass(frozen=True)
class Recipe:
    """A shipped model: what it learns from, its network, its schedule and its training run."""

    name: str
    kind: str  # "diffusion", "classifier", "judge", "clip" or "vae"
    dataset: str  # "digits" or "shapes"
    arch: str  # a U-Net or DiT preset name, a VAE preset, or "digit-classifier"
    method: str = "ddpm"
    conditioning: str | None = None  # None, "class" or "text"
    schedule: str | None = "cosine"  # None for flow matching (no noise schedule)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""
    text_encoder: str | None = None  # the shipped TinyCLIP whose frozen token states condition the model
    default_guidance_scale: float | None = None  # what sample() uses when given a condition but no scale
    # DDIM's eta when sample() is given none: 1 (fresh noise each step) for the text models, whose deterministic
    # samples carry the denoiser's leftover error into grainy backgrounds (issue 34; docs/BENCHMARKS.md)
    default_eta: float = 0.0
    vae: str | None = None  # latent diffusion: the shipped VAE whose scaled latents the model denoises
    teacher: str | None = None  # consistency distillation: the shipped model distilled (and the student's start)
    # a VAE: then this many steps of its decoder alone, the encoder frozen (``latent.finetune_decoder``)
    decoder_finetune: TrainConfig | None = None

    def __post_init__(self):
        if self.kind == "diffusion" and self.method != DIFFUSION_METHODS[self.train.objective]:
            raise ValueError(f"recipe {self.name!r}: method {self.method!r} does not match its objective "
                             f"{self.train.objective!r} (expected {DIFFUSION_METHODS[self.train.objective]!r}).")

    @property
    def family(self) -> str | None:
        """The model family of a diffusion recipe (``course_utils.families``); None for the other kinds."""
        return self.train.objective if self.kind == "diffusion" else None


RECIPES: dict[str, Recipe] = {
    "digits-ddpm": Recipe(
        name="digits-ddpm", kind="diffusion", dataset="digits", arch="digits-small", method="ddpm",
        schedule="cosine",
        train=TrainConfig(steps=6000, batch_size=128, lr=5e-4, warmup_steps=200, ema_decay=0.999, checkpoint_every=500,
                          seed=0),
        description="Unconditional DDPM (epsilon-prediction) on the 1,797 scikit-learn digits at 16x16.",
    ),
    "digits-class": Recipe(
        name="digits-class", kind="diffusion", dataset="digits", arch="digits-class", method="ddpm",
        conditioning="class", schedule="cosine", default_guidance_scale=3.0,
        train=TrainConfig(steps=1500, batch_size=64, lr=1e-3, warmup_steps=100, ema_decay=0.995,
                          label_dropout=0.1, checkpoint_every=100, seed=0),
        description="Class-conditional DDPM on the digits, trained from scratch: a label embedding (10 digits and "
                    "a learned null label) added to the timestep embedding, 10% of labels dropped to the null "
                    "label so one network also serves as the unconditional model for classifier-free guidance.",
    ),
    "digits-flow": Recipe(
        name="digits-flow", kind="diffusion", dataset="digits", arch="digits-small", method="flow_matching",
        schedule=None,
        train=TrainConfig(steps=6000, batch_size=128, lr=5e-4, warmup_steps=200, ema_decay=0.999, checkpoint_every=500,
                          seed=0, objective="flow_matching", time_sampling="logit_normal"),
        description="digits-ddpm's network, data and budget trained with flow matching (the straight path, velocity "
                    "prediction) and SD3's logit-normal time sampling (sigma = sigmoid(N(0, 1)): most examples at "
                    "middle noise); unconditional, for few-step Euler and Heun sampling.",
    ),
    "digits-student": Recipe(
        name="digits-student", kind="diffusion", dataset="digits", arch="digits-small", method="consistency",
        schedule="cosine", teacher="digits-ddpm",
        train=TrainConfig(steps=2000, batch_size=64, lr=2e-4, warmup_steps=50, ema_decay=0.95, checkpoint_every=100,
                          seed=0, objective="consistency", original_inference_steps=50),
        description="Consistency-distilled student of digits-ddpm (the strong unconditional model), for 1-4 step "
                    "sampling: started from the teacher's weights and trained so that one call jumps from any point "
                    "of the teacher's DDIM trajectory (a 50-point grid) to its clean end; target network an EMA "
                    "of the student (mu = 0.95), pseudo-Huber distance.",
    ),
    "shapes-text": Recipe(
        name="shapes-text", kind="diffusion", dataset="shapes", arch="shapes-text", method="ddpm",
        conditioning="text", schedule="cosine", text_encoder="tiny-clip", default_guidance_scale=3.0, default_eta=1.0,
        train=TrainConfig(steps=6000, batch_size=64, lr=5e-4, warmup_steps=200, lr_decay="cosine", ema_decay=0.999,
                          label_dropout=0.1, precision="bf16", checkpoint_every=100, seed=0),
        description="Text-conditioned DDPM on 20,000 32x32 shapes: cross-attention to the frozen tiny-clip text "
                    "encoder's token states, 10% of captions replaced by the empty prompt (for guidance).",
    ),
    "shapes-vae": Recipe(
        name="shapes-vae", kind="vae", dataset="shapes", arch="shapes-vae", method="vae",
        train=TrainConfig(steps=2500, batch_size=64, lr=2e-3, seed=0),
        decoder_finetune=TrainConfig(steps=8000, batch_size=64, lr=1e-3, precision="bf16", seed=0),
        description="KL autoencoder for latent diffusion: 32x32x3 shapes to 8x8x4 latents (12x fewer numbers), "
                    "trained on 20,000 shapes with MSE + 1e-3 x KL; its scaling_factor (1 / latent std) is set "
                    "from 2,000 training images; then its decoder alone trained further on the same shapes, the "
                    "encoder frozen (as Stable Diffusion's sd-vae-ft-mse), so that the latents stay the same and "
                    "decode sharper. Reconstruction error measured on 2,000 held-out shapes.",
    ),
    "shapes-latent": Recipe(
        name="shapes-latent", kind="diffusion", dataset="shapes", arch="shapes-latent", method="ddpm",
        conditioning="text", schedule="cosine", text_encoder="tiny-clip", vae="shapes-vae",
        default_guidance_scale=3.0, default_eta=1.0,
        train=TrainConfig(steps=2000, batch_size=64, lr=5e-4, warmup_steps=200, ema_decay=0.998,
                          label_dropout=0.1, checkpoint_every=100, seed=0),
        description="Latent diffusion: shapes-text's first recipe (2,000 steps at a constant rate) run on shapes-vae's "
                    "scaled 8x8x4 latents of the same "
                    "20,000 shapes (posterior means), decoded by the VAE after sampling.",
    ),
    **{f"dit-digits-{size}": Recipe(
        name=f"dit-digits-{size}", kind="diffusion", dataset="digits", arch=f"dit-digits-{size}", method="ddpm",
        conditioning="class", schedule="cosine", default_guidance_scale=3.0,
        train=TrainConfig(steps=4000, batch_size=64, lr=1e-3, warmup_steps=200, ema_decay=0.998,
                          label_dropout=0.1, checkpoint_every=100, seed=0),
        description=f"Class-conditional DiT ({what}; adaLN-Zero, 2x2 patches, 64 tokens) on the digits: the data, "
                    "schedule and label dropout of the digits-class U-Net. dit-digits-s and dit-digits-b are "
                    "trained identically, for notebook 07's size comparison.",
    ) for size, what in (("s", "0.33M parameters"), ("b", "1.06M parameters, the digits-class U-Net's size"))},
    "digit-classifier": Recipe(
        name="digit-classifier", kind="classifier", dataset="digits", arch="digit-classifier", method="classifier",
        train=TrainConfig(steps=1500, batch_size=128, seed=0),
        description="CNN digit classifier for digits-FID / KID features and class adherence; held-out split.",
    ),
    "shapes-judge": Recipe(
        name="shapes-judge", kind="judge", dataset="shapes", arch="shapes-judge", method="classifier",
        train=TrainConfig(steps=2000, batch_size=128, seed=0),
        description="CNN that reads shape, colour and background of a 32x32 shapes image (prompt adherence), "
                    "and tells a picture from pixel noise; trained on 20,000 noised/blurred images and noise "
                    "images, validated on 2,000 held-out real ones and 2,000 fresh noise images.",
    ),
    "tiny-clip": Recipe(
        name="tiny-clip", kind="clip", dataset="shapes", arch="tiny-clip", method="contrastive",
        train=TrainConfig(steps=1500, batch_size=128, lr=1e-3, seed=0),
        description="A tiny CLIP (CNN image encoder, 2-layer text transformer, 64-d joint space) trained "
                    "contrastively on 20,000 shapes and their captions; zero-shot accuracy over all 90 captions.",
    ),
}


# notebook 10's "too aggressive schedule" failure: digits-class with only its schedule changed.
RECIPES["digits-class-linear"] = replace(
    RECIPES["digits-class"], name="digits-class-linear", schedule="linear",
    description="digits-class's network, data, budget and label dropout under DDPM's original linear schedule "
                "(beta 1e-4 to 0.02), which destroys the digits much earlier than the cosine schedule: "
                "notebook 10's 'too aggressive schedule' failure, next to digits-class as its fix.")


def get_recipe(name: str) -> Recipe:
    check_choice("recipe", name, RECIPES)
    return RECIPES[name]
