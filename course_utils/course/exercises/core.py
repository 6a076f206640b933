"""The checker machinery: results, strict mode, numeric comparison, build exercises, question widgets.

A learner's function runs through ``call_learner``: under a time limit (``COURSE_CHECK_TIMEOUT``
seconds, 60 by default), so an endless loop ends in a message instead of a hung notebook. Its
answer is then read strictly: ``None`` (a forgotten ``return``), complex numbers, NaN and a wrong
shape are each incorrect with a hint that names the likely slip.

A **build exercise** is a whole working piece (a sampling loop, a training step, a VAE loss) that
the notebook then uses. ``BuildExercise`` names it and says what it will be graded on before the
learner starts; ``grade_build`` runs its stages (unit cases, then outcomes such as a distance to
the data) and turns the first ``Miss`` into an incorrect verdict with that stage's hint; ``use_build``
hands the cells after it the learner's piece when it is correct and the package's otherwise, so Run
All reaches the end with every build unsolved.
"""

from __future__ import annotations

import contextlib
import html
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not attempted"
_STYLE = {CORRECT: ("#e6f4ea", "#137333", "✅"), INCORRECT: ("#fce8e6", "#a50e0e", "❌"),
          NOT_ATTEMPTED: ("#f1f3f4", "#3c4043", "✏️")}


class ExerciseFailed(AssertionError):
    """Raised for an incorrect answer in strict mode (``COURSE_STRICT_CHECKS=1``)."""


class LearnerTimeout(Exception):
    """A learner's function ran past the checker's time limit."""


def time_limit() -> float:
    """Seconds a learner's function may run in a check: ``COURSE_CHECK_TIMEOUT``, else 60."""
    try:
        return max(float(os.environ.get("COURSE_CHECK_TIMEOUT", "60")), 0.001)
    except ValueError:
        return 60.0


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise ``LearnerTimeout`` in this thread after ``seconds`` (a SIGALRM timer: where there is
    none, as on Windows or off the main thread, the code runs without a limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    expired = []

    def expire(signum, frame):
        expired.append(True)
        raise LearnerTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if expired:  # the handler's exception was swallowed: raised inside a garbage-collector callback (hypothesis
        raise LearnerTimeout  # installs one) or caught by a bare `except` in the learner's code


def call_learner(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` under the time limit; ``LearnerTimeout`` if it does not return in time."""
    with _deadline(time_limit()):
        return fn(*args, **kwargs)


def _timeout_message() -> str:
    return (f"Your code did not return within {time_limit():g} s. Look for a loop that never ends (a `while` "
            "whose condition never changes, a counter that is never updated), then rerun its cell.")


@dataclass
class CheckResult:
    """The outcome of one check: ``exercise`` name, ``status`` and a human ``message``."""

    exercise: str
    status: str
    message: str

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        return f"{_STYLE[self.status][2]} {self.exercise}: {self.status}. {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        bg, fg, icon = _STYLE[self.status]
        return (f'<div style="background:{bg};color:{fg};padding:6px 10px;border-radius:4px;">'
                f"{icon} <b>{html.escape(self.exercise)}</b>: {self.status}. {html.escape(self.message)}</div>")


def strict() -> bool:
    return os.environ.get("COURSE_STRICT_CHECKS", "") not in ("", "0", "false", "False")


def _finish(result: CheckResult) -> CheckResult:
    if strict() and result.status == INCORRECT:
        raise ExerciseFailed(str(result))
    return result


def _is_complex(x: Any) -> bool:
    try:
        return bool(np.iscomplexobj(x))
    except (TypeError, ValueError, AttributeError, RuntimeError):  # not array-like: check_values says so
        return False


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _numbers(x: Any) -> np.ndarray | None:
    """``x`` as float64 numbers, or None when it is not numeric."""
    try:
        return _as_array(x)
    except (TypeError, ValueError):
        return None


def _diagnose(got: Any, slips: Sequence[tuple[Any, str]]) -> str | None:
    """The hint of the first known slip whose result matches ``got``, if any."""
    g = _numbers(got)
    if g is None:
        return None
    for value, hint in slips:
        v = _numbers(value)
        if v is not None and v.shape == g.shape and np.allclose(g, v, rtol=1e-4, atol=1e-6):
            return hint
    return None


def check_values(exercise: str, got: Any, expected: Any, atol: float = 1e-4, rtol: float = 1e-4,
                 hint: str = "") -> CheckResult:
    """Compare a learner's numbers with the reference (shapes first, then values)."""
    if got is None:
        return _finish(CheckResult(exercise, INCORRECT, "Your function returned None: did you forget `return`?"))
    if got.is_complex() if isinstance(got, torch.Tensor) else _is_complex(got):
        return _finish(CheckResult(exercise, INCORRECT, "Your answer has complex numbers: a square root or a "
                                                        f"log of a negative number somewhere? {hint}".strip()))
    try:
        g, e = _as_array(got), _as_array(expected)
    except (TypeError, ValueError):
        return _finish(CheckResult(exercise, INCORRECT, f"Expected numbers, got {type(got).__name__}. {hint}".strip()))
    if g.shape != e.shape:
        return _finish(CheckResult(exercise, INCORRECT, f"Expected shape {e.shape}, got {g.shape}. {hint}".strip()))
    if not np.all(np.isfinite(g)):
        return _finish(CheckResult(exercise, INCORRECT, f"Your answer contains NaN or inf. {hint}".strip()))
    if np.allclose(g, e, atol=atol, rtol=rtol):
        return _finish(CheckResult(exercise, CORRECT, "Well done."))
    worst = float(np.max(np.abs(g - e)))
    return _finish(CheckResult(exercise, INCORRECT, f"Off by up to {worst:.3g}. {hint}".strip()))


def run_check(exercise: str, attempt: Callable[[], Any], expected: Any, **kwargs) -> CheckResult:
    """Call the learner's code (``attempt()``) and compare its result with ``expected``.

    ``NotImplementedError`` means the exercise is not attempted yet; any other exception is an
    incorrect answer whose message names the error.
    """
    try:
        got = call_learner(attempt)
    except NotImplementedError:
        return CheckResult(exercise, NOT_ATTEMPTED, "Fill in the function above, run its cell, then run this one.")
    except LearnerTimeout:
        return _finish(CheckResult(exercise, INCORRECT, _timeout_message()))
    except Exception as err:  # a learner's bug is an answer to report, not a crash
        return _finish(CheckResult(exercise, INCORRECT, f"Your code raised {type(err).__name__}: {err}"))
    return check_values(exercise, got, expected, **kwargs)


def check_cases(exercise: str, fn: Callable, cases: Sequence[tuple[tuple, Any, Sequence[tuple[Any, str]]]],
                hint: str, atol: float = 1e-5, rtol: float = 1e-5) -> CheckResult:
    """Run ``fn(*args)`` on each case ``(args, expected, slips)``; the first failing case decides.

    ``slips`` lists ``(wrong_result, hint)`` pairs for known mistakes: when the learner's output
    matches one, its hint replaces the generic ``hint``.
    """
    result = None
    for args, expected, slips in cases:
        try:
            got, error = call_learner(fn, *args), None
        except Exception as err:  # re-raised inside run_check, which knows how to report it
            got, error = None, err

        def attempt(got=got, error=error):
            if error is not None:
                raise error
            return got

        case_hint = (_diagnose(got, slips) or hint) if error is None else hint
        result = run_check(exercise, attempt, expected, atol=atol, rtol=rtol, hint=case_hint)
        if not result.correct:
            return result
    return result


# --------------------------------------------------------------------------------------------
# Build exercises
# --------------------------------------------------------------------------------------------

class Miss(Exception):
    """A build stage that the learner's piece fails; the message is the hint shown to the learner."""


@dataclass(frozen=True)
class BuildExercise:
    """A build exercise: its name, the piece the learner writes, and what the checker grades.

    Displaying it (the last line of a cell) shows the learner the grading before they start.
    """

    exercise: str
    task: str
    graded_on: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"🔧 {self.exercise}: {self.task}", "Graded on:"]
        return "\n".join(lines + [f"  {i}. {g}" for i, g in enumerate(self.graded_on, 1)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(g)}</li>" for g in self.graded_on)
        return (f'<div style="border-left:4px solid #1a73e8;padding:4px 10px;">🔧 <b>{html.escape(self.exercise)}</b>: '
                f"{html.escape(self.task)}<br>Graded on:<ol style='margin:2px 0'>{items}</ol></div>")


def grade_build(build: BuildExercise, *stages: Callable[[], str | None]) -> CheckResult:
    """Run ``stages`` in order; each calls the learner's code (through ``call_learner``) and either
    returns a short note of what it measured or raises ``Miss(hint)``.

    The first stage that misses decides: ``incorrect`` with its hint. ``NotImplementedError`` (the
    stub) is ``not attempted``, a time-out or any other exception ``incorrect`` with a message. When
    every stage passes the verdict is ``correct`` and the notes (the figures reached) follow it.
    """
    notes = []
    for stage in stages:
        try:
            note = stage()
        except NotImplementedError:
            return CheckResult(build.exercise, NOT_ATTEMPTED,
                               "Fill in the function(s) above, run the cell, then run this one.")
        except LearnerTimeout:
            return _finish(CheckResult(build.exercise, INCORRECT, _timeout_message()))
        except Miss as miss:
            return _finish(CheckResult(build.exercise, INCORRECT, str(miss)))
        except Exception as err:  # a learner's bug is an answer to report, not a crash
            return _finish(CheckResult(build.exercise, INCORRECT, f"Your code raised {type(err).__name__}: {err}"))
        if note:
            notes.append(note)
    return CheckResult(build.exercise, CORRECT, "Well done. " + "; ".join(notes) + ("." if notes else ""))


def use_build(result: CheckResult, mine: Any, fallback: Any, what: str) -> Any:
    """``mine`` when the build ``result`` is correct, else ``fallback`` (the package's version); says which."""
    if not isinstance(result, CheckResult):
        raise TypeError(f"result must be the CheckResult a build checker returned, got {type(result).__name__}.")
    if result.correct:
        print(f"Using your {what} from here on.")
        return mine
    print(f"Using the package's {what} from here on ({result.exercise} is {result.status}).")
    return fallback


def expect_close(got: Any, expected: Any, what: str, hint: str, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """``Miss`` unless ``got`` has the numbers of ``expected``: None, complex, non-finite, a wrong shape
    and wrong values each get their own message, ending in ``hint``."""
    if got is None:
        raise Miss(f"{what} is None: did you forget `return`?")
    if got.is_complex() if isinstance(got, torch.Tensor) else _is_complex(got):
        raise Miss(f"{what} has complex numbers: a square root or log of a negative number? {hint}".strip())
    g, e = _numbers(got), _as_array(expected)
    if g is None:
        raise Miss(f"{what} should be numbers, got {type(got).__name__}. {hint}".strip())
    if g.shape != e.shape:
        raise Miss(f"{what} should have shape {e.shape}, got {g.shape}. {hint}".strip())
    if not np.all(np.isfinite(g)):
        raise Miss(f"{what} contains NaN or inf. {hint}".strip())
    if not np.allclose(g, e, atol=atol, rtol=rtol):
        raise Miss(f"{what} is off by up to {float(np.max(np.abs(g - e))):.3g}. {hint}".strip())


def expect_seeded(draw: Callable[[torch.Generator], Any], what: str) -> None:
    """``Miss`` unless ``draw(generator)`` repeats for the same seed and changes with another: a piece
    that uses torch's global generator, or ignores the one it is given, fails with a hint."""
    first, again, other = (_as_array(call_learner(draw, torch.Generator().manual_seed(s))) for s in (0, 0, 1))
    if first.shape != again.shape or not np.array_equal(first, again):
        raise Miss(f"The same seed gave another {what}: draw every random number from the generator you are given "
                   "(torch.randn(..., generator=generator)), not from torch's global one.")
    if first.shape == other.shape and np.array_equal(first, other):
        raise Miss(f"Seeds 0 and 1 gave the same {what}: the generator you are given is ignored; draw from it.")


def _question_widget(exercise: str, prompt: str, field, judge: Callable[[Any], CheckResult]):
    """A prompt, an input field and a Check button whose feedback appears underneath."""
    import ipywidgets as widgets

    button = widgets.Button(description="Check", button_style="primary")
    feedback = widgets.HTML(value=CheckResult(exercise, NOT_ATTEMPTED, "Answer, then press Check.")._repr_html_())
    title = widgets.HTML(f"<b>{html.escape(exercise)}</b>: {html.escape(prompt)}")
    if isinstance(field, widgets.RadioButtons):  # options one per line, full width, the button under them
        field.layout = widgets.Layout(width="100%")
        rows = [title, field, button, feedback]
    else:
        rows = [title, widgets.HBox([field, button]), feedback]
    box = widgets.VBox(rows)
    box.result = CheckResult(exercise, NOT_ATTEMPTED, "Answer, then press Check.")

    def on_click(_=None):
        box.result = judge(field.value)
        feedback.value = box.result._repr_html_()

    button.on_click(on_click)
    box.check = on_click  # lets tests (and keyboard users) trigger a check without a click
    box.field = field  # the answer field, whatever the layout around it
    return box


def ask_number(exercise: str, prompt: str, expected: float, atol: float = 0.0, rtol: float = 0.0, hint: str = ""):
    """A question answered with a number; correct within ``atol`` / ``rtol`` of ``expected``.

    The field is free text (empty means "not attempted"), since a numeric field would turn an
    untouched answer into 0.
    """
    import ipywidgets as widgets

    field = widgets.Text(value="", placeholder="a number", description="Answer:")

    def judge(value):
        text = str(value).strip()
        if not text:
            return CheckResult(exercise, NOT_ATTEMPTED, "Type a number first.")
        try:
            number = float(text)
        except ValueError:
            return CheckResult(exercise, INCORRECT, f"{text!r} is not a number.")
        ok = bool(np.isclose(number, expected, atol=atol, rtol=rtol))
        return CheckResult(exercise, CORRECT if ok else INCORRECT, "Well done." if ok else hint or "Not quite.")

    return _question_widget(exercise, prompt, field, judge)


def ask_choice(exercise: str, prompt: str, options: Sequence[str], answer: str, explanation: str = "",
               hints: Mapping[str, str] | None = None):
    """A multiple-choice question; ``hints`` maps a wrong option to its own hint, and the
    explanation is shown once the right option is checked."""
    import ipywidgets as widgets

    if answer not in options:
        raise ValueError(f"answer {answer!r} must be one of the options {list(options)}.")
    hints = dict(hints or {})
    unknown = set(hints) - set(options)
    if unknown:
        raise ValueError(f"hints name options that do not exist: {sorted(unknown)}.")
    field = widgets.RadioButtons(options=list(options), value=None, description="")

    def judge(value):
        if value is None:
            return CheckResult(exercise, NOT_ATTEMPTED, "Pick an option first.")
        if value == answer:
            return CheckResult(exercise, CORRECT, explanation or "Well done.")
        return CheckResult(exercise, INCORRECT, hints.get(value, "Not this one: think again and retry."))

    return _question_widget(exercise, prompt, field, judge)
