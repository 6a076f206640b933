"""course_utils.course.widgets.latent: the latent explorer shows the chosen image's channel and its correlations."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.course.widgets import LatentExplorer  # noqa: E402
from course_utils.data import make_shapes  # noqa: E402
from course_utils.latent import encode, latent_channel_correlations  # noqa: E402
from course_utils.models.vae import VAE, VAEConfig  # noqa: E402


@pytest.mark.widgets
def test_moving_the_controls_shows_that_channel_of_that_image():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(base_channels=16)).eval()
    images = make_shapes(3, seed=5).images
    explorer = LatentExplorer(vae, images)
    latents = encode(vae, images, scaled=False)  # the posterior means, before the scale factor
    explorer.index.value, explorer.channel.value = 1, 2
    assert torch.equal(explorer.current, latents[1, 2])
    expected = latent_channel_correlations(latents[1:2], images[1:2])
    assert explorer.stats == pytest.approx({k: float(v[2]) for k, v in expected.items()})
    assert explorer.reconstructions.shape == images.shape
    plt.close("all")
