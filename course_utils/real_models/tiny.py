"""Stable Diffusion's real component classes, scaled down and randomly initialised: offline and fast.

``tiny_sd_components`` builds the five parts a ``diffusers.StableDiffusionPipeline`` holds, each the
class SD 1.5 uses (``UNet2DConditionModel``, ``AutoencoderKL``, ``CLIPTextModel``, ``CLIPTokenizer``,
``DDIMScheduler`` with SD 1.5's noise schedule), with configs small enough that an 8-step guided
generation of a 32x32 image takes a few hundredths of a second on a CPU. The weights are random, so
the images are noise-like; what the tiny parts are for is running the real code paths (ours and
diffusers') and comparing them number for number.

Shapes (SD 1.5's in brackets): images ``(B, 3, 32, 32)`` [512x512], latents ``(B, 4, 16, 16)``
[64x64, a VAE factor of 8; here 2], prompt embeddings ``(B, 77, 32)`` [(B, 77, 768)].

The tokenizer is a real ``CLIPTokenizer`` (byte-level BPE) with a tiny vocabulary: the 256 byte
symbols, each also ending a word (``"a</w>"``), a few whole words, and CLIP's two special tokens;
any text tokenizes (unknown words fall back to letters), so ``pipe(prompt="a red circle")`` works.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from .._validation import as_int, check_bool

# Source: SD 1.5's scheduler_config.json (stable-diffusion-v1-5/stable-diffusion-v1-5), the values
# that make DDIM sample the way the model was trained; DDIM's defaults differ in the last three.
SD15_SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                             beta_schedule="scaled_linear", steps_offset=1, set_alpha_to_one=False, clip_sample=False)
TINY_VOCAB_SIZE = 1000  # the text encoder's embedding rows; the tokenizer uses fewer ids
TINY_WORDS = ("a", "an", "the", "of", "on", "in", "with", "photo", "painting", "red", "green", "blue", "yellow",
              "white", "black", "circle", "square", "triangle", "background", "cat", "dog", "astronaut", "horse")


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0-255 (GPT-2's ``bytes_to_unicode``)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    codes = {b: b for b in printable} | {b: 256 + i for i, b in enumerate(extra)}
    return [chr(codes[b]) for b in range(256)]


def tiny_clip_tokenizer(words=TINY_WORDS):
    """A ``transformers.CLIPTokenizer`` with a vocabulary of 512 byte symbols, ``words`` and the two
    special tokens (about 600 ids), padded to CLIP's 77 tokens. Built from a ``vocab.json`` and a
    ``merges.txt`` written to a temporary folder (the files every transformers version reads; they are
    loaded at once and the folder removed)."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    merges = []
    for word in words:  # merge letters left to right: "r e", "re d</w>" -> "red</w>"
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = f"{pieces[0]} {pieces[1]}"
            if merge not in merges:
                merges.append(merge)
                vocab.setdefault(pieces[0] + pieces[1], len(vocab))
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    with tempfile.TemporaryDirectory() as folder:
        vocab_file, merges_file = Path(folder, "vocab.json"), Path(folder, "merges.txt")
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def tiny_sd_components(seed: int = 0) -> dict:
    """The five parts of a Stable Diffusion pipeline, tiny and seeded (the global RNG is left untouched).

    Returns:
        ``{"unet", "vae", "text_encoder", "tokenizer", "scheduler"}``: a ``UNet2DConditionModel`` over
        ``(B, 4, 16, 16)`` latents cross-attending to ``(B, 77, 32)`` text states (two levels of 32 and
        64 channels, the second with attention); an ``AutoencoderKL`` with two levels (factor 2: 32x32x3
        images <-> 16x16x4 latents, ``scaling_factor`` 0.18215 as SD's); a 2-layer ``CLIPTextModel``
        of width 32; ``tiny_clip_tokenizer()``; a ``DDIMScheduler`` with ``SD15_SCHEDULER_CONFIG``.
        All float32, in eval mode, on the CPU.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    seed = as_int("seed", seed, minimum=0, what="a seed (an integer >= 0)")
    tokenizer = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=32)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=TINY_VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    return {"unet": unet.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval(), "tokenizer": tokenizer,
            "scheduler": DDIMScheduler(**SD15_SCHEDULER_CONFIG)}


def tiny_sd_pipeline(seed: int = 0, scheduler=None, progress_bar: bool = False):
    """A real ``diffusers.StableDiffusionPipeline`` of ``tiny_sd_components(seed)``.

    Args:
        seed: the components' weights.
        scheduler: any diffusers scheduler (or a sampler of ours) in place of the tiny DDIM one.
        progress_bar: show diffusers' progress bar (off: the course's cells stay quiet).

    No safety checker and no feature extractor (both need downloaded weights; SD's is a separate
    1.2 GB model): ``pipe(prompt="a red circle", num_inference_steps=8)`` runs offline.
    """
    from diffusers import StableDiffusionPipeline

    parts = tiny_sd_components(seed)
    if scheduler is not None:
        parts["scheduler"] = scheduler
    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=not check_bool("progress_bar", progress_bar))
    return pipe
