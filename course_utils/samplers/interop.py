"""Our samplers where diffusers expects a scheduler: ``config`` and ``from_config``.

A diffusers pipeline reads its scheduler's settings from ``scheduler.config`` (a read-only dict whose
keys are also attributes), and a user swaps schedulers with ``NewScheduler.from_config(pipe.scheduler
.config)``. Our samplers do both, with diffusers' key names, so that

.. code-block:: python

    pipe.scheduler = DDIMSampler.from_config(pipe.scheduler.config)       # ours inside diffusers' pipeline
    theirs = diffusers.DDIMScheduler.from_config(DDIMSampler(schedule).config)   # and back

give the same timesteps and the same steps. As in diffusers, keys a sampler does not use are ignored
(a config written for another scheduler carries some), and so are the keys the source scheduler had at
its defaults; a key it uses but implements only at one value
(``thresholding=True``, say) is refused with the value it supports, never dropped in silence.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..schedules import DIFFUSERS_BETA_SCHEDULE, NoiseSchedule, get_schedule, rescale_zero_terminal_snr

_OUR_SCHEDULE = {v: k for k, v in DIFFUSERS_BETA_SCHEDULE.items()}  # diffusers' beta_schedule -> ours
_COSINE_DIFFUSERS = {"s": 0.008, "max_beta": 0.999}  # squaredcos_cap_v2 has these fixed


class SamplerConfig(dict):
    """A sampler's settings by diffusers' names: a dict whose keys read as attributes too
    (``config.prediction_type``), like diffusers' ``FrozenDict``, and read-only."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this sampler's config has no {name!r}; it has {', '.join(sorted(self))}.") from None

    def _read_only(self, *args, **kwargs):
        raise TypeError("a sampler's config is read-only; build a new sampler with from_config(config, key=value).")

    __setitem__ = __delitem__ = __setattr__ = update = pop = popitem = setdefault = clear = _read_only


def schedule_config(schedule: NoiseSchedule) -> dict:
    """The diffusers keys that rebuild ``schedule``: its ``beta_schedule`` and ends when ``get_schedule``
    made it and diffusers has the same formula, otherwise its betas as ``trained_betas``."""
    recipe = schedule.recipe or {}
    name = recipe.get("name")
    same_cosine = name == "cosine" and all(recipe.get(k) == v for k, v in _COSINE_DIFFUSERS.items())
    config = {"num_train_timesteps": schedule.num_timesteps, "beta_schedule": "linear", "beta_start": 0.0001,
              "beta_end": 0.02, "trained_betas": None, "rescale_betas_zero_snr": False}
    if name in ("linear", "scaled_linear") or same_cosine:
        config.update(beta_schedule=DIFFUSERS_BETA_SCHEDULE[name], rescale_betas_zero_snr=recipe["rescale_betas_zero_snr"])
        config.update({k: recipe[k] for k in ("beta_start", "beta_end") if k in recipe})
    else:
        config["trained_betas"] = schedule.betas.tolist()
    return config


def schedule_from_config(config: Mapping) -> NoiseSchedule:
    """The ``NoiseSchedule`` a diffusers scheduler config describes (``beta_schedule`` "linear",
    "scaled_linear" or "squaredcos_cap_v2", or ``trained_betas``; ``rescale_betas_zero_snr``)."""
    n = int(config.get("num_train_timesteps", 1000))
    zero_snr = bool(config.get("rescale_betas_zero_snr", False))
    if config.get("trained_betas") is not None:
        betas = torch.as_tensor(config["trained_betas"], dtype=torch.float64)
        schedule = NoiseSchedule(betas)
        return rescale_zero_terminal_snr(schedule) if zero_snr else schedule
    beta_schedule = config.get("beta_schedule", "linear")
    if beta_schedule not in _OUR_SCHEDULE:
        raise ValueError(f"config's beta_schedule {beta_schedule!r} is not one the course builds; accepted: "
                         f"{', '.join(sorted(_OUR_SCHEDULE))}, or trained_betas.")
    ours = _OUR_SCHEDULE[beta_schedule]
    ends = {} if ours == "cosine" else {"beta_start": config.get("beta_start", 0.0001),
                                         "beta_end": config.get("beta_end", 0.02)}
    return get_schedule(ours, n, rescale_betas_zero_snr=zero_snr, **ends)


def config_of(sampler) -> SamplerConfig:
    """``sampler``'s settings by diffusers' names (``SamplerBase.config``)."""
    config = {"_class_name": sampler.diffusers_class}
    if getattr(sampler, "schedule", None) is not None:
        config.update(schedule_config(sampler.schedule))
    config.update({key: getattr(sampler, key) for key in sampler.config_keys})
    config.update(sampler.fixed_config)
    return SamplerConfig(config)


def kwargs_from_config(cls, config, overrides: dict) -> dict:
    """The constructor arguments of sampler class ``cls`` that a diffusers config (a dict, a
    ``FrozenDict``, or a scheduler that has ``.config``) and ``overrides`` ask for."""
    config = getattr(config, "config", config)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a scheduler config (a dict, or a scheduler's .config), got "
                        f"{type(config).__name__}.")
    # diffusers' from_config leaves out the keys the source scheduler had at its own defaults (listed in
    # ``_use_default_values``), so that the new class uses its defaults there: a DDIM config's "leading"
    # spacing, say, is DDIM's default, not a choice, and an Euler built from it keeps its "linspace".
    defaults = set(config.get("_use_default_values", ()))
    merged = {**{k: v for k, v in config.items() if k not in defaults}, **overrides}
    unknown = set(overrides) - set(cls.config_keys) - {"num_train_timesteps", "beta_schedule", "beta_start",
                                                        "beta_end", "trained_betas", "rescale_betas_zero_snr"}
    if unknown:
        raise TypeError(f"{cls.__name__}.from_config does not take {', '.join(sorted(unknown))}; it reads "
                        f"{', '.join(cls.config_keys)} and the schedule's keys.")
    for key, supported in cls.fixed_config.items():
        if key in merged and merged[key] != supported:
            raise ValueError(f"config's {key}={merged[key]!r} is not implemented by {cls.__name__}, which supports "
                             f"{key}={supported!r} only ({cls.diffusers_class} has the other settings).")
    kwargs = {key: merged[key] for key in cls.config_keys if key in merged}
    if cls.uses_schedule:
        kwargs["schedule"] = schedule_from_config(merged)
    return kwargs
