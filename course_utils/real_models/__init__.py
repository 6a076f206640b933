"""Real text-to-image models: their published configs, built without weights, and measured.

Four models ship as small JSON files of their published configs (``configs/``): Stable Diffusion 1.5
(Rombach et al. 2022), SDXL base 1.0 (Podell et al. 2023), DiT-XL/2 256x256 (Peebles & Xie 2023)
and Stable Diffusion 3 medium (Esser et al. 2024). ``build`` makes any component on PyTorch's meta
device (shapes, no storage: no memory, no download); ``anatomy`` counts each component's parameters
(per block), weight memory and FLOPs, and the shapes one generation passes through it:

.. code-block:: python

    from course_utils.real_models import anatomy, build, describe
    unet = build("sd15", "unet")                   # 859,520,964 parameters, none of them in memory
    parts = anatomy("sdxl")                         # {"text_encoder": {...}, ..., "unet": {...}, "vae": {...}}
    parts["unet"]["flops"], parts["unet"]["memory"]["fp16"]
    describe(my_small_unet, (x, t))                 # the course's own model, counted the same way

Modules: ``registry`` (the configs, ``build``), ``counting`` (parameters, memory, FLOPs,
``describe``), ``generation`` (one generation on meta tensors), ``anatomy`` (all of it per model).
The generation loop run on real weights lives in ``pipelines`` (with ``tiny``'s small random models).
"""

from .anatomy import anatomy, check_resolution, denoiser, generation_shapes, native_size, vae_factor
from .counting import describe, flops_of
from .registry import NAMES, build, components, load_config, model_info

__all__ = ["NAMES", "anatomy", "build", "check_resolution", "components", "denoiser", "describe", "flops_of",
           "generation_shapes", "load_config", "model_info", "native_size", "vae_factor"]
