"""course_utils: the tested code behind the diffusion-models notebook series.

A core library, bottom to top (docs/ARCHITECTURE.md draws the import graph):

- foundations: ``config`` (modes, devices), ``families``, ``checkpoints``, ``profiling``
- maths: ``schedules``, ``parameterization`` (eps / x0 / v), ``forward``, ``reverse``,
  ``flow_matching``, ``guidance``, ``oracle``
- ``samplers`` (diffusers' scheduler interface, one loop, a registry); ``training`` (``train`` in
  parts), ``distillation``, ``reflow``
- ``data``, ``models``, ``latent``; ``pipeline`` (``DiffusionModel``), ``denoisers``, ``pretrained``,
  ``metrics``, ``viz``; ``recipes``, ``cards``, ``train`` (the command line)

and the course wing above it, ``course`` (exercise checkers, quiz, widgets, one-notebook demos),
which the core never imports.

Timestep convention (used everywhere): timesteps are 0-indexed as in diffusers. Index ``t`` of
every schedule array is timestep ``t``; ``t = 0`` is the least noisy step and ``t = T - 1`` the
noisiest. ``x_t`` is the sample after ``t + 1`` applications of the one-step chain.
"""

__version__ = "0.2.0"

from ._deprecation import install_finder

install_finder()  # old import paths (course_utils.widgets, ...) still work until 0.3, with a warning
