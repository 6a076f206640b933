"""Reproduce a shipped checkpoint from scratch: ``python -m course_utils.train NAME``.

Writes ``OUT/NAME.safetensors`` (EMA weights, or the classifier, with their config in the
metadata) and ``OUT/NAME.md`` (the model card: recipe, steps, seed, device, wall time, metric).
``--install`` also copies the file into ``course_utils/pretrained/weights/`` and records its
SHA-256 and card in the manifest. Training resumes from ``OUT/NAME.train.safetensors`` if a
previous run was interrupted.

On several GPUs (or CPU processes), the diffusion recipes train data-parallel with PyTorch's
DistributedDataParallel: ``torchrun --standalone --nproc_per_node=N -m course_utils.train NAME``.
The recipe's batch size is the global batch, split evenly over the N processes; rank 0 saves,
evaluates and writes the card (``course_utils.training.distributed``).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from . import metrics, pretrained
from .cards import evaluate_recipe, write_card
from .checkpoints import save_checkpoint, sha256_file, with_prefix
from .config import get_device
from .data import load_digits, make_shapes
from .families import FLOW_MATCHING, FLOW_PREDICTION
from .latent import decode, encode, finetune_decoder, numbers_per_image, reconstruction_error, train_vae
from .models import architecture_of, build_denoiser
from .models.clip import train_tiny_clip, zero_shot_accuracy
from .models.text_unet import CaptionConditionedUNet, caption_table
from .pipeline import DiffusionModel
from .recipes import RECIPES, Recipe, get_recipe
from .samplers.consistency import STUDENT_MIN_ALPHA_BAR, TIMESTEP_SCALING
from .schedules import get_schedule
from .training import distributed, train


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def train_classifier(recipe: Recipe, out: Path, device: torch.device, progress: bool, evaluate: bool) -> tuple[Path, dict]:
    """The digit classifier (on the CPU, its own loop), its held-out accuracy and the real-vs-real floor."""
    start = time.perf_counter()
    x_train, y_train = load_digits(split="train")
    x_test, y_test = load_digits(split="test")
    model = metrics.train_digit_classifier(x_train, y_train, steps=recipe.train.steps,
                                           batch_size=recipe.train.batch_size, seed=recipe.train.seed)
    acc = metrics.accuracy(model, x_test, y_test)
    half_a, half_b = metrics.reference_split()
    with torch.no_grad():
        fa, fb = model.features(half_a).double(), model.features(half_b).double()
    floor_fid = metrics.frechet_distance(*metrics.gaussian_stats(fb), *metrics.gaussian_stats(fa))
    floor_kid = metrics.kernel_inception_distance(fb, fa)[0]
    wall = time.perf_counter() - start
    card = {"held_out_accuracy": acc, "held_out_count": len(y_test), "floor_fid": floor_fid, "floor_kid": floor_kid,
            "floor_n": len(half_b), "wall_time_s": wall}
    tensors = with_prefix(model.state_dict(), "model.") | {"ref_features": fa.float()}
    meta = {"name": recipe.name, "kind": "classifier"} | card
    return save_checkpoint(out / f"{recipe.name}.safetensors", tensors, meta), card


def train_judge(recipe: Recipe, out: Path, device: torch.device, progress: bool, evaluate: bool) -> tuple[Path, dict]:
    """The shapes judge (on the CPU, its own loop) and its held-out accuracy."""
    start = time.perf_counter()
    model = metrics.train_shapes_judge(make_shapes(20000, seed=0), steps=recipe.train.steps,
                                       batch_size=recipe.train.batch_size, seed=recipe.train.seed)
    held_out = make_shapes(2000, seed=1)
    card = {"held_out_accuracy": metrics.judge_accuracy(model, held_out), "held_out_count": len(held_out),
            "held_out_seed": 1, "noise_called_noise": metrics.noise_rejection(model, 2000, seed=1), "wall_time_s": time.perf_counter() - start}
    meta = {"name": recipe.name, "kind": "judge"}
    return save_checkpoint(out / f"{recipe.name}.safetensors", with_prefix(model.state_dict(), "model."), meta), card


def train_clip(recipe: Recipe, out: Path, device: torch.device, progress: bool, evaluate: bool) -> tuple[Path, dict]:
    """Tiny CLIP (on the CPU, its own loop) and its zero-shot accuracy."""
    start = time.perf_counter()
    model = train_tiny_clip(make_shapes(20000, seed=0), steps=recipe.train.steps, batch_size=recipe.train.batch_size,
                            lr=recipe.train.lr, seed=recipe.train.seed)
    held_out = make_shapes(2000, seed=1)
    card = {"zero_shot_accuracy": zero_shot_accuracy(model, held_out), "zero_shot_captions": 90,
            "held_out_count": len(held_out), "held_out_seed": 1, "wall_time_s": time.perf_counter() - start}
    meta = {"name": recipe.name, "kind": "clip"}
    return save_checkpoint(out / f"{recipe.name}.safetensors", with_prefix(model.state_dict(), "model."), meta), card


def train_autoencoder(recipe: Recipe, out: Path, device: torch.device, progress: bool,
                      evaluate: bool, from_shipped: bool = False) -> tuple[Path, dict]:
    """The VAE, then its decoder alone (``recipe.decoder_finetune``), its reconstructions' error and judged content.
    ``from_shipped``: stage one is the shipped VAE (its record kept); only the fine-tune runs."""
    t, f, images = recipe.train, recipe.decoder_finetune, make_shapes(20000, seed=0).images
    if from_shipped:
        vae, losses = pretrained.load(recipe.name, device), pretrained.load_tensors(recipe.name)[1]["losses"]
        card = {k: pretrained.info(recipe.name)["card"][k] for k in ("final_loss", "wall_time_s")}
    else:
        result = train_vae(images, recipe.arch, steps=t.steps, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                           device=device, progress=progress)
        if result.interrupted:
            raise KeyboardInterrupt("VAE training was interrupted; rerun the command (it starts again).")
        vae, losses = result.model, result.losses
        card = {"final_loss": losses[-1][1:], "wall_time_s": result.wall_time_s}
    meta = {"name": recipe.name, "kind": "vae", "model_config": vae.config.to_dict(), "losses": losses}
    if f is not None:
        tuned = finetune_decoder(vae, images, steps=f.steps, batch_size=f.batch_size, lr=f.lr, seed=f.seed,
                                 device=device, progress=progress, precision=f.precision)
        if tuned.interrupted:
            raise KeyboardInterrupt("the decoder fine-tune was interrupted; rerun the command (it starts again).")
        vae, meta["decoder_finetune_losses"] = tuned.model, tuned.losses
        card["decoder_finetune"] = {k: getattr(f, k) for k in ("steps", "batch_size", "lr", "seed", "precision")} | {
            "final_recon": tuned.losses[-1][2], "wall_time_s": tuned.wall_time_s}
    vae, held_out = vae.cpu(), make_shapes(2000, seed=1)
    recon = replace(held_out, images=decode(vae, encode(vae, held_out.images)))  # the same shapes, reconstructed
    card |= {"reconstruction": reconstruction_error(vae, held_out.images), "held_out_seed": 1,
             "judge_on_reconstructions": metrics.judge_accuracy(pretrained.load("shapes-judge", "cpu"), recon),
             "background_grain_of_reconstructions": round(metrics.background_grain(recon.images), 4),
             "scaling_factor": vae.config.scaling_factor, "kl_weight": 1e-3, "parameters": vae.num_parameters(),
             "numbers_per_image": numbers_per_image(vae)}
    return save_checkpoint(out / f"{recipe.name}.safetensors", with_prefix(vae.state_dict(), "model."), meta), card


def student_sampler_config(recipe: Recipe) -> dict:
    """How a consistency student is sampled: the grid it was distilled on, the boundary scalings'
    ``timestep_scaling`` and the floor under ``alpha_bar`` (``samplers.consistency``)."""
    return {"original_inference_steps": recipe.train.original_inference_steps,
            "timestep_scaling": TIMESTEP_SCALING, "min_alpha_bar": STUDENT_MIN_ALPHA_BAR}


def _training_data(recipe: Recipe):
    """Images (or scaled latents), the labels train() conditions on (class or caption index), the
    text encoder and its caption table."""
    images, labels, clip, table = _pixel_data(recipe)
    if recipe.vae is not None:
        images = encode(pretrained.load(recipe.vae, device="cpu"), images)  # (N, 4, 8, 8), about unit std
    return images, labels, clip, table


def _pixel_data(recipe: Recipe):
    if recipe.dataset == "digits":
        images, labels = load_digits()
        return images, (labels if recipe.conditioning == "class" else None), None, None
    if recipe.dataset == "shapes":
        data = make_shapes(20000, seed=0)
        if recipe.conditioning != "text":
            return data.images, None, None, None
        clip = pretrained.load(recipe.text_encoder, device="cpu")
        _, index, states, masks = caption_table(clip, data.captions)
        return data.images, index, clip, (states, masks)
    raise NotImplementedError(f"dataset {recipe.dataset!r} has no training entry yet.")


def train_diffusion(recipe: Recipe, out: Path, device: torch.device, progress: bool,
                    evaluate: bool = True) -> tuple[Path | None, dict | None]:
    """Train, then (unless ``evaluate=False``) measure; under torchrun only rank 0 returns a file."""
    images, labels, clip, table = _training_data(recipe)
    torch.manual_seed(recipe.train.seed)  # the initial weights: the same on every run of the recipe
    unet = build_denoiser(recipe.arch)
    net = CaptionConditionedUNet(unet, *table) if table is not None else unet
    flow = recipe.train.objective == FLOW_MATCHING
    schedule = None if flow else get_schedule(recipe.schedule)
    prediction_type = FLOW_PREDICTION if flow else recipe.train.prediction_type
    teacher = None
    sampler_config = {"shift": recipe.train.time_shift} if flow and recipe.train.time_shift != 1.0 else None
    if recipe.teacher is not None:  # consistency distillation: the student starts as the teacher
        teacher = pretrained.load(recipe.teacher, device="cpu").denoiser
        unet.load_state_dict(teacher.state_dict())
        sampler_config = student_sampler_config(recipe)
    result = train(net, images, schedule, recipe.train, labels=labels, device=device,
                   checkpoint_path=out / f"{recipe.name}.train.safetensors", progress=progress,
                   value_range=None if recipe.vae else 1.0, teacher=teacher)
    if result.interrupted:
        raise KeyboardInterrupt(f"training stopped at step {result.step}; rerun the same command to resume.")
    if not distributed.is_main():
        return None, None
    ema = result.ema_model.to(device).eval()
    ema = ema.unet if table is not None else ema
    model = DiffusionModel(ema, schedule, prediction_type,
                           {"name": recipe.name, "conditioning": recipe.conditioning, "method": recipe.method,
                            "default_guidance_scale": recipe.default_guidance_scale,
                            "default_eta": recipe.default_eta},
                           text_encoder=clip.to(device) if clip is not None else None,
                           vae=pretrained.load(recipe.vae, device) if recipe.vae else None,
                           sampler_config=sampler_config)
    card = {"steps": result.step, "wall_time_s": result.wall_time_s, "images_per_s": result.images_per_s,
            "final_loss": result.losses[-1][1] if result.losses else None, "parameters": unet.num_parameters(),
            "processes": distributed.world_size()}
    if evaluate:
        card |= evaluate_recipe(recipe, model)
    tensors = with_prefix(ema.state_dict(), "model.")
    meta = {"name": recipe.name, "kind": "diffusion", "architecture": architecture_of(ema),
            "model_config": ema.config.to_dict(), "schedule": None if flow else recipe.schedule,
            "prediction_type": prediction_type, "losses": result.losses,
            "text_encoder": recipe.text_encoder, "vae": recipe.vae, "method": recipe.method,
            "teacher": recipe.teacher, "sampler_config": sampler_config}
    return save_checkpoint(out / f"{recipe.name}.safetensors", tensors, meta), card


def install(recipe: Recipe, weights: Path, card: dict) -> None:
    """Copy into the package and record the hash and card in the manifest (atomically)."""
    target = pretrained.WEIGHTS / weights.name
    if weights.resolve() != target.resolve():
        shutil.copyfile(weights, target)
    manifest = json.loads(pretrained.MANIFEST.read_text()) if pretrained.MANIFEST.exists() else {}
    manifest[recipe.name] = {"name": recipe.name, "file": weights.name, "sha256": sha256_file(target),
                             "kind": recipe.kind, "dataset": recipe.dataset, "method": recipe.method,
                             "arch": recipe.arch, "conditioning": recipe.conditioning, "schedule": recipe.schedule,
                             "description": recipe.description, "card": card,
                             "default_guidance_scale": recipe.default_guidance_scale,
                             "default_eta": recipe.default_eta}
    fd, tmp = tempfile.mkstemp(dir=pretrained.HERE, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, pretrained.MANIFEST)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Reproduce a shipped checkpoint from scratch.")
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=Path("runs"), help="output folder (default: runs/)")
    parser.add_argument("--steps", type=int, help="override the recipe's number of training steps")
    parser.add_argument("--device", choices=("cuda", "mps", "cpu"), help="default: the best available")
    parser.add_argument("--install", action="store_true", help="copy into the package and update the manifest")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--log-every", type=int, help="record the mean loss every this many steps (recipe: 50)")
    parser.add_argument("--checkpoint-every", type=int,
                        help="save the training state every this many steps, to resume from (recipe: 100)")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="CUDA, one process: record each training step as one CUDA graph (TrainConfig.cuda_graph)")
    parser.add_argument("--from-shipped", action="store_true", help="a VAE: run only the recipe's decoder fine-tune, on "
                        "the shipped weights (the encoder, so the latents and the latent models, stay the same)")
    parser.add_argument("--skip-eval", action="store_true",
                        help="train and save only: the card records no quality metric (diffusion recipes)")
    args = parser.parse_args(argv)

    recipe = get_recipe(args.name)
    overrides = {k: v for k, v in (("steps", args.steps), ("log_every", args.log_every),
                                   ("checkpoint_every", args.checkpoint_every)) if v is not None}
    overrides |= {"cuda_graph": True} if args.cuda_graph else {}
    if args.cuda_graph and recipe.kind != "diffusion":
        parser.error(f"--cuda-graph records the diffusion loop's step; {recipe.name!r} is a {recipe.kind} with its own "
                     f"loop (diffusion recipes: {', '.join(n for n, r in sorted(RECIPES.items()) if r.kind == 'diffusion')}).")
    recipe = replace(recipe, train=replace(recipe.train, **overrides))
    if distributed.launched():
        if recipe.kind != "diffusion":
            raise ValueError(f"{recipe.name!r} is a {recipe.kind} with its own small loop; only the diffusion recipes "
                             f"train data-parallel ({', '.join(n for n, r in sorted(RECIPES.items()) if r.kind == 'diffusion')}). "
                             f"Train it in one process: python -m course_utils.train {recipe.name}")
        device = distributed.setup(args.device)
    else:
        device = get_device(args.device)
    try:
        _run(recipe, args, device)
    finally:
        distributed.teardown()


TRAINERS = {  # recipe kind -> trainer(recipe, out, device, progress, evaluate) -> (weights file, card)
    "classifier": train_classifier, "judge": train_judge, "clip": train_clip, "vae": train_autoencoder,
    "diffusion": train_diffusion,
}
OWN_LOOP_FIELDS = {  # the TrainConfig fields the small networks' own loops use (their cards record only these)
    "classifier": ("steps", "batch_size", "seed"), "judge": ("steps", "batch_size", "seed"),
    "clip": ("steps", "batch_size", "lr", "seed"), "vae": ("steps", "batch_size", "lr", "seed"),
}


def _run(recipe: Recipe, args, device: torch.device) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_shipped and recipe.decoder_finetune is None:
        raise ValueError(f"--from-shipped runs a VAE recipe's decoder fine-tune on the shipped weights; {recipe.name!r} "
                         f"has none (with one: {', '.join(n for n, r in sorted(RECIPES.items()) if r.decoder_finetune)}).")
    trainer = functools.partial(train_autoencoder, from_shipped=True) if args.from_shipped else TRAINERS[recipe.kind]
    weights, card = trainer(recipe, args.out, device, not args.no_progress, not args.skip_eval)
    if weights is None:  # a DDP process other than rank 0: rank 0 writes the card
        return
    fields = asdict(recipe.train)  # an own loop's card records only the fields it uses; --from-shipped, stage one's
    train_config = (pretrained.info(recipe.name)["card"]["train_config"] if args.from_shipped
                    else {k: fields[k] for k in OWN_LOOP_FIELDS.get(recipe.kind, fields)})
    card |= {"recipe": recipe.name, "train_config": train_config, "device": _device_name(device),
             "torch": torch.__version__, "date": datetime.date.today().isoformat()}
    print(write_card(recipe, card, args.out).read_text())
    if args.install:
        install(recipe, weights, card)
        print(f"installed {weights.name} into {pretrained.WEIGHTS}")


if __name__ == "__main__":
    main()
