"""course_utils: the tested code behind the diffusion-models notebook series.

One concept per module (see README.md, "Package layout"):

- ``config``      modes (``COURSE_MODE=fast|cpu|full``) and device choice
- ``schedules``   noise schedules (linear, cosine, scaled_linear) and their SNR
- ``forward``     the forward process: one step of the chain and the closed form
- ``reverse``     the reverse-step mean and the eps / x0 / v conversions
- ``samplers``    DDPM and DDIM with diffusers' scheduler interface
- ``oracle``      exact denoisers for toy data (reverse process before any training)
- ``data``        digits, procedural shapes with captions, 2-D toys, optional MNIST
- ``viz``, ``widgets``, ``exercises``   plots, interactive explorers, answer checkers

Timestep convention (used everywhere): timesteps are 0-indexed as in diffusers. Index ``t`` of
every schedule array is timestep ``t``; ``t = 0`` is the least noisy step and ``t = T - 1`` the
noisiest. ``x_t`` is the sample after ``t + 1`` applications of the one-step chain.
"""

__version__ = "0.2.0"

from ._deprecation import install_finder

install_finder()  # old import paths (course_utils.widgets, ...) still work until 0.3, with a warning
