"""Small argument checks shared by every module, so each error names what is accepted."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch


def recording_cuda_graph() -> bool:
    """True while a CUDA graph is being recorded (``TrainConfig(cuda_graph=True)``). Checks that read
    a tensor's values on the host (a range check) would break the recording, so they skip it: the
    recorded step's inputs come from data that ``train`` checked, and its eager steps before it."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _same_choice(value, option) -> bool:
    """``value`` is ``option``: the same string, or the same whole number (numpy ones too, never a bool)."""
    if isinstance(option, str):
        return isinstance(value, str) and value == option
    if isinstance(option, numbers.Integral) and not isinstance(option, bool):
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value == option
    return value is option


def check_choice(name: str, value, accepted: Iterable):
    """Return the accepted option ``value`` stands for; else raise a ``ValueError`` naming them all."""
    accepted = list(accepted)
    for option in accepted:
        if _same_choice(value, option):
            return option
    shown = repr(value) if isinstance(value, (str, numbers.Number)) else f"{type(value).__name__} {value!r}"[:80]
    raise ValueError(f"Unknown {name} {shown}. Accepted: {', '.join(map(repr, accepted))}.")


def _describe(value) -> str:
    return f"the bool {value}" if isinstance(value, (bool, np.bool_)) else f"{type(value).__name__} {value!r}"


def as_int(name: str, value, minimum: int | None = None, maximum: int | None = None, what: str = "an integer") -> int:
    """``value`` as a Python int: ints, numpy integers, integer 0-d tensors and whole floats (``4.0``)
    are accepted; bools, strings, fractions and NaN / inf are refused, naming ``name`` and the range."""
    bounds = (f" >= {minimum}" if minimum is not None else "") + (f" and <= {maximum}" if maximum is not None else "")
    bounds = f" ({bounds.strip()})" if what != "an integer" and bounds else bounds
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}{bounds}, got {_describe(value)}.")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be {what}{bounds}, got {value}.")
        if not float(value).is_integer():
            raise TypeError(f"{name} must be {what}{bounds} (a whole number), got {value!r}.")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {what}{bounds}, got {v}.")
    return v


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int if it is a whole number >= 1 (``as_int``); else raise a clear error."""
    return as_int(name, value, minimum=1, what="a positive integer")


def as_float(name: str, value, low: float | None = None, high: float | None = None, low_open: bool = False,
             high_open: bool = False, note: str = "") -> float:
    """``value`` as a finite Python float in the interval from ``low`` to ``high`` (open at an end when
    asked): ints, floats, numpy scalars and 0-d tensors are accepted; bools, strings, NaN and inf are
    refused with a message that names ``name``, the interval and ``note`` (what the values mean)."""
    if low == 0 and high is None:
        accepted = "a positive number" if low_open else "a number >= 0"
    else:
        accepted = "a number in " + (("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
                                     + ("inf" if high is None else f"{high:g}") + (")" if high_open or high is None else "]"))
    accepted += f" ({note})" if note else ""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {accepted}, got {_describe(value)}.")
    v = float(value)
    outside = (low is not None and (v <= low if low_open else v < low)
               or high is not None and (v >= high if high_open else v > high))
    if not math.isfinite(v) or outside:
        where = accepted.replace("a number in ", "lie in ", 1) if accepted.startswith("a number in ") else f"be {accepted}"
        raise ValueError(f"{name} must {where}, got {v:g}.")
    return v


def check_bool(name: str, value) -> bool:
    """A flag: ``True`` / ``False`` (numpy bools too); anything else refused (``"no"`` would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}.")
    return bool(value)


def check_generator(generator, name: str = "generator") -> torch.Generator | None:
    """``None`` or a ``torch.Generator``. A seed is not taken in its place (one kind of argument, one
    meaning): ``torch.Generator().manual_seed(seed)`` turns a seed into a generator."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}; for a seed s "
                        "pass torch.Generator().manual_seed(s).")
    return generator


def memory_bytes() -> int:
    """The machine's physical memory in bytes (64 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 64 * 2**30


def check_size(what: str, n_bytes: float, argument: str) -> None:
    """Refuse, before allocating, a request whose estimated size is more than the machine's memory."""
    limit = memory_bytes()
    if n_bytes > limit:
        raise ValueError(f"{what} would need about {n_bytes / 2**30:,.1f} GiB, more than this machine's "
                         f"{limit / 2**30:,.1f} GiB of memory; ask for less ({argument}).")


def check_images(images, name: str = "images", shape: tuple | None = None, value_range: float | None = 1.0,
                 what: str = "(N, C, H, W) images") -> torch.Tensor:
    """A batch of images a metric or a judge can read: a tensor of ``what``, its ``(C, H, W)`` equal to
    ``shape`` when given, finite, and within ``[-value_range, value_range]`` (samples are clamped to it)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of {what}, got {type(images).__name__}.")
    if images.ndim != 4 or len(images) == 0 or (shape is not None and tuple(images.shape[1:]) != tuple(shape)):
        raise ValueError(f"{name} must be {what} (at least one), got shape {tuple(images.shape)}.")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or inf; a metric cannot score them (check the sampler's output).")
    if value_range is not None and images.abs().max() > value_range + 1e-3:
        raise ValueError(f"{name} must lie in [-{value_range:g}, {value_range:g}] (clamp samples first), got values "
                         f"from {images.min().item():.3g} to {images.max().item():.3g}.")
    return images


def check_labels(labels, n: int, num_classes: int, name: str = "labels") -> torch.Tensor:
    """``(n,)`` integer labels in ``[0, num_classes)`` (one int stands for all ``n``)."""
    try:
        t = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        t = torch.zeros(0, 0)  # strings and the like: refused just below
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.ndim > 1:
        raise ValueError(f"{name} must be an int or a sequence of n ints in [0, {num_classes - 1}], got {labels!r}.")
    t = t.long().expand(n) if t.ndim == 0 else t.long()
    if t.shape != (n,):
        raise ValueError(f"{name} must be one int or n = {n} ints (one per image), got {t.shape[0]}.")
    if n and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] (the classes there are), got {int(t.min())} "
                         f"to {int(t.max())}.")
    return t


def as_tensor(x, name: str = "input", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Floats, lists, numpy arrays or tensors in; a floating-point tensor out.

    Non-float input becomes float64 for Python/numpy data (so hand-worked examples keep their
    precision) unless ``dtype`` says otherwise. Raises ``TypeError`` for strings and the like.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be a number, a list of numbers, an array or a tensor; got {type(x).__name__}."
            ) from err
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def check_levels(channel_mults, sample_size: int) -> None:
    """A conv net with one level per ``channel_mults`` entry, halving H and W between levels."""
    levels = len(channel_mults)
    if levels < 1 or any(m < 1 for m in channel_mults):
        raise ValueError(f"channel_mults must be positive integers, got {channel_mults}.")
    if sample_size % 2 ** (levels - 1):
        raise ValueError(f"sample_size {sample_size} must be divisible by 2**{levels - 1} for {levels} levels.")


def check_same_shape(**tensors: torch.Tensor) -> None:
    """Raise a ``ValueError`` listing every shape when the given tensors differ in shape."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k}: {s}" for k, s in shapes.items())
        raise ValueError(f"Shapes must match; got {listed}.")


def broadcast_to_sample(coeff: torch.Tensor, sample: torch.Tensor, name: str = "coefficient") -> torch.Tensor:
    """Shape a per-example coefficient so it multiplies ``sample`` of shape ``(B, ...)``.

    ``coeff`` may be a scalar (0-d) or have shape ``(B,)``; it is returned with shape
    ``(B, 1, ..., 1)`` (or 0-d), on ``sample``'s device and dtype. This is the one place the package
    turns per-timestep numbers into broadcastable tensors.
    """
    coeff = torch.as_tensor(coeff)
    if coeff.ndim == 0:
        return coeff.to(device=sample.device, dtype=sample.dtype)
    if coeff.ndim != 1 or sample.ndim == 0 or coeff.shape[0] != sample.shape[0]:
        raise ValueError(
            f"{name} must be a scalar or have shape (B,) with B = sample.shape[0]; "
            f"got {name} of shape {tuple(coeff.shape)} for a sample of shape {tuple(sample.shape)}."
        )
    return coeff.to(device=sample.device, dtype=sample.dtype).reshape(-1, *([1] * (sample.ndim - 1)))


def unit_coefficient(value, name: str, like: torch.Tensor, allow_one: bool, allow_zero: bool = False) -> torch.Tensor:
    """A schedule number in (0, 1) (or with ``allow_one`` / ``allow_zero`` the closed ends), a float or
    ``(B,)``, shaped to multiply ``like`` (``broadcast_to_sample``); anything else is refused with the
    accepted range."""
    c = as_tensor(value, name, dtype=torch.float64)
    ok = ((c >= 0) if allow_zero else (c > 0)) & ((c <= 1) if allow_one else (c < 1))
    if not torch.isfinite(c).all() or not bool(ok.all()):
        accepted = f"{'[' if allow_zero else '('}0, 1{']' if allow_one else ')'}"
        raise ValueError(f"{name} must lie in {accepted}; got {c.tolist()}.")
    return broadcast_to_sample(c, like, name)


def paired_tensors(a, b, name_a: str, name_b: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two same-shaped tensors (``b`` cast to ``a``'s dtype and device), or a clear error."""
    a = as_tensor(a, name_a)
    b = as_tensor(b, name_b, dtype=a.dtype).to(a.device)
    check_same_shape(**{name_a: a, name_b: b})
    return a, b


def check_timesteps(t, num_timesteps: int, name: str = "t") -> torch.Tensor:
    """Validate integer timesteps in ``[0, num_timesteps)``; return them as a long tensor."""
    if isinstance(t, bool):
        raise TypeError(f"{name} must be an int or a LongTensor of timesteps, got a bool.")
    if isinstance(t, int):
        t = torch.tensor(t)
    elif isinstance(t, Sequence) and not isinstance(t, str):
        t = torch.tensor(list(t))
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be an int or a LongTensor of timesteps, got {type(t).__name__}.")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer timesteps, got dtype {t.dtype}.")
    if t.ndim > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D batch of timesteps, got shape {tuple(t.shape)}.")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_timesteps):
        raise ValueError(
            f"{name} out of range: timesteps are 0-indexed, so they must lie in [0, {num_timesteps - 1}]; "
            f"got min {int(t.min())}, max {int(t.max())}."
        )
    return t.long()
