"""Small argument checks shared by every module, so each error names what is accepted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def recording_cuda_graph() -> bool:
    """True while a CUDA graph is being recorded (``TrainConfig(cuda_graph=True)``). Checks that read
    a tensor's values on the host (a range check) would break the recording, so they skip it: the
    recorded step's inputs come from data that ``train`` checked, and its eager steps before it."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def check_choice(name: str, value: str, accepted: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``accepted``; else raise a ``ValueError`` naming them."""
    accepted = list(accepted)
    if value not in accepted:
        raise ValueError(f"Unknown {name} {value!r}. Accepted: {', '.join(map(repr, accepted))}.")
    return value


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int if it is a whole number >= 1; else raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value)
        else:
            raise TypeError(f"{name} must be a positive integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}.")
    return value


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


def unit_coefficient(value, name: str, like: torch.Tensor, allow_one: bool) -> torch.Tensor:
    """A schedule number in (0, 1) (or (0, 1] with ``allow_one``), a float or ``(B,)``, shaped to
    multiply ``like`` (``broadcast_to_sample``); anything else is refused with the accepted range."""
    c = as_tensor(value, name, dtype=torch.float64)
    ok = (c > 0) & ((c <= 1) if allow_one else (c < 1))
    if not torch.isfinite(c).all() or not bool(ok.all()):
        raise ValueError(f"{name} must lie in {'(0, 1]' if allow_one else '(0, 1)'}; got {c.tolist()}.")
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
