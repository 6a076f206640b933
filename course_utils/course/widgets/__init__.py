"""Interactive explorers (ipywidgets 7.7+ and 8, so Colab and JupyterLab 4 both work), one per module.

- ``ForwardExplorer`` (notebook 02): a schedule and a timestep, images noised by the closed form;
- ``PromptExplorer`` (05): a prompt and a guidance scale, samples and the judge's reading of them;
- ``LatentExplorer`` (06): images and their VAE latents, one channel at a time;
- ``PatchExplorer`` (07): an image cut into a DiT's patch tokens;
- ``SamplerExplorer`` (09): a sampler and a step count, the digits, their time and network calls.
"""

from .forward import ForwardExplorer
from .latent import LatentExplorer
from .patch import PatchExplorer
from .prompt import PromptExplorer
from .sampler import SamplerExplorer

__all__ = ["ForwardExplorer", "LatentExplorer", "PatchExplorer", "PromptExplorer", "SamplerExplorer"]
