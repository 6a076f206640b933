"""The online path: real Stable Diffusion weights from the Hugging Face hub, only when asked.

Nothing here downloads unless ``download=True``: without it a loader reads a local folder or the
local Hugging Face cache (``local_files_only=True``) and otherwise refuses, saying what it would
fetch, from where and about how large. ``components_of(pipe)`` hands the parts to
``pipelines``' functions, so a notebook cell runs the same on a real pipeline or ``tiny_sd_pipeline()``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .._validation import check_bool

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
FEW_STEP_REPO = "stabilityai/sd-turbo"
# About how much ``from_pretrained`` fetches (U-Net + text encoder + VAE, no safety checker), in GB
# (10^9 bytes), from the parameter counts: SD 1.5 = 860M + 123M + 84M; SD-Turbo (SD 2.1's U-Net and
# OpenCLIP ViT-H's text tower) = 866M + 340M + 84M. Both repos ship an fp16 variant of every part.
KNOWN_DOWNLOADS = {
    SD15_REPO: {"what": "Stable Diffusion 1.5 (512x512, 50 steps, CLIP ViT-L/14 text encoder)",
                "float16": 2.1, "float32": 4.3},
    FEW_STEP_REPO: {"what": "SD-Turbo (SD 2.1 distilled by adversarial diffusion distillation: 1-4 steps, 512x512)",
                    "float16": 2.6, "float32": 5.2},
}
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class DownloadRequired(RuntimeError):
    """A loader was asked for weights that are not on this machine, with ``download=False``."""


def _precision(dtype) -> str:
    if dtype not in (None, torch.float16, torch.float32):
        raise ValueError(f"dtype must be None (float32), torch.float16 or torch.float32, got {dtype!r}.")
    return "float16" if dtype == torch.float16 else "float32"


def describe_download(repo_id: str, dtype=None) -> str:
    """What ``download=True`` would fetch for ``repo_id`` in ``dtype``: the model, the address, the size."""
    if not isinstance(repo_id, str) or not repo_id:
        raise TypeError(f"repo_id must be a Hugging Face repository id such as {SD15_REPO!r}, got {repo_id!r}.")
    precision, known = _precision(dtype), KNOWN_DOWNLOADS.get(repo_id)
    if known is None:
        size = "a size this course has not recorded (see the Files tab there)"
        what = "the pipeline"
    else:
        size = f"about {known[precision]:.1f} GB in {precision}" + (
            f" (about {known['float16']:.1f} GB with dtype=torch.float16)" if precision == "float32" else "")
        what = known["what"]
    return (f"Loading {repo_id!r} would download {what}: the U-Net, text encoder, VAE, tokenizer and scheduler "
            f"from https://huggingface.co/{repo_id}, {size}, into the Hugging Face cache (~/.cache/huggingface, "
            "or cache_dir). The safety checker is not loaded.")


def _dtype_keyword() -> str:
    """``from_pretrained``'s name for the dtype: ``dtype`` since diffusers deprecated ``torch_dtype`` (the
    release that added ``diffusers.utils._resolve_dtype``), ``torch_dtype`` before."""
    import diffusers.utils

    return "dtype" if hasattr(diffusers.utils, "_resolve_dtype") else "torch_dtype"


def _load(repo_id, download, dtype, device, cache_dir):
    """``DiffusionPipeline.from_pretrained``, local files only unless ``download``; the progress bar off."""
    from diffusers import DiffusionPipeline

    repo_id = str(repo_id) if isinstance(repo_id, Path) else repo_id
    download, precision = check_bool("download", download), _precision(dtype)
    describe_download(repo_id, dtype)  # checks repo_id
    options = {"cache_dir": cache_dir, "safety_checker": None, "requires_safety_checker": False}
    if dtype is not None:
        options[_dtype_keyword()] = dtype
    if precision == "float16" and repo_id in KNOWN_DOWNLOADS:
        options["variant"] = "fp16"  # the half-size files, not float32 ones cast after the download
    try:
        pipe = DiffusionPipeline.from_pretrained(repo_id, local_files_only=not download, **options)
    except OSError as err:
        if download or Path(repo_id).is_dir():
            raise
        raise DownloadRequired(f"{describe_download(repo_id, dtype)} It is not on this machine and download=False: "
                               "pass download=True (needs the internet and that much disk), or use "
                               "course_utils.real_models.tiny.tiny_sd_pipeline() offline.") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device) if device is not None else pipe


def load_sd_pipeline(repo_id: str = SD15_REPO, download: bool = False, dtype=None, device=None, cache_dir=None):
    """Stable Diffusion 1.5 (or ``repo_id``, a hub id or a local folder saved with ``save_pretrained``).

    Args:
        download: allow fetching from the hub (``describe_download`` says what); False: a local folder
            or the local cache only, else ``DownloadRequired``.
        dtype: None / ``torch.float32``, or ``torch.float16`` (half the download; for a GPU).
        device: move the pipeline there (``"cuda"``); None: leave it on the CPU.
        cache_dir: where the hub's files are kept (default: the Hugging Face cache).

    Returns:
        a ``diffusers.StableDiffusionPipeline`` without its safety checker (``components_of`` gives its parts).
    """
    return _load(repo_id, download, dtype, device, cache_dir)


def load_few_step_pipeline(repo_id: str = FEW_STEP_REPO, download: bool = False, dtype=None, device=None,
                           cache_dir=None):
    """A distilled few-step model: SD-Turbo by default (an LCM such as ``"SimianLuo/LCM_Dreamshaper_v7"``
    loads the same way); arguments as ``load_sd_pipeline``.

    SD-Turbo samples in 1-4 steps without guidance: with ``pipelines.text_to_image`` pass
    ``guidance_scale=1.0`` (the conditional model alone); diffusers' own call takes ``guidance_scale=0.0``
    for that, since it guides only above 1, where here 0 means the unconditional model.
    """
    return _load(repo_id, download, dtype, device, cache_dir)


def components_of(pipe) -> dict:
    """``{"unet", "vae", "text_encoder", "tokenizer", "scheduler"}`` of a Stable-Diffusion-like pipeline (a
    real one or ``tiny_sd_pipeline()``): the arguments ``pipelines``' functions take."""
    missing = [name for name in COMPONENTS if getattr(pipe, name, None) is None]
    if missing:
        raise TypeError(f"pipe must be a Stable Diffusion pipeline with {', '.join(COMPONENTS)}; "
                        f"{type(pipe).__name__} lacks {', '.join(missing)}.")
    return {name: getattr(pipe, name) for name in COMPONENTS}
