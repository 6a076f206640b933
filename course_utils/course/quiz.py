"""A self-check quiz for the end of the series (notebook 10): write first, then compare.

``SELF_CHECK`` holds the course text's four retrieval prompts and seven interview questions, in
the order the notebooks teach their topics, each with a model answer and the key points a good
answer makes. ``SelfCheckQuiz`` shows them one at a time and reveals a model answer only after
the learner has written one of their own (recall first, then recognition); the learner then ticks
the key points their answer made.

Like the explorers in ``widgets``, the quiz keeps its state in plain attributes (``index``,
``answers``, ``revealed``, ``ticked``), so it can be driven and checked without a browser, on
ipywidgets 7.7 (Colab) and 8 (JupyterLab 4).
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from .quiz_questions import SELF_CHECK, Question


def count_words(text: str) -> int:
    """Whitespace-separated words in ``text`` (what ``min_words`` counts)."""
    return len(str(text).split())


def _paragraphs(text: str) -> str:
    """Plain text as HTML: blank lines separate paragraphs, single newlines break lines."""
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))


def _note(message: str, warn: bool = False) -> str:
    """A feedback box in the colours of ``exercises.core.CheckResult`` (grey, or red for a refusal)."""
    bg, fg = ("#fce8e6", "#a50e0e") if warn else ("#f1f3f4", "#3c4043")
    return f'<div style="background:{bg};color:{fg};padding:6px 10px;border-radius:4px;">{message}</div>'


def _check_questions(questions) -> tuple[Question, ...]:
    if isinstance(questions, (str, bytes)) or not isinstance(questions, Iterable):
        raise TypeError(f"questions must be a sequence of Question items, got {type(questions).__name__}.")
    questions = tuple(questions)
    if not questions:
        raise ValueError("questions must contain at least one Question (e.g. course_utils.quiz.SELF_CHECK).")
    for i, q in enumerate(questions):
        if not isinstance(q, Question):
            raise TypeError(f"questions[{i}] must be a course_utils.course.quiz.Question, got {type(q).__name__}.")
    return questions


def _check_min_words(min_words) -> int:
    if isinstance(min_words, bool) or not isinstance(min_words, int):
        raise TypeError(f"min_words must be a positive int, got {type(min_words).__name__}.")
    if min_words < 1:
        raise ValueError(f"min_words must be a positive int, got {min_words}.")
    return min_words


class SelfCheckQuiz:
    """Write an answer, then compare it with a model answer and tick the key points you made.

    One question at a time; Previous / Next keep each question's text, revealed state and ticks.
    The model answer opens only once the learner has written at least ``min_words`` words.

    Args:
        questions: the ``Question`` items to ask, in order (default: ``SELF_CHECK``, 11 questions).
        min_words: words needed before the model answer is shown.

    State (plain attributes): ``index`` (current question), ``answers`` (str per question),
    ``revealed`` (bool per question), ``ticked`` (set of key-point indices per question).
    """

    def __init__(self, questions: Iterable[Question] = SELF_CHECK, min_words: int = 15):
        import ipywidgets as widgets

        self.questions = _check_questions(questions)
        self.min_words = _check_min_words(min_words)
        n = len(self.questions)
        self.index = 0
        self.answers = [""] * n
        self.revealed = [False] * n
        self.ticked = [set() for _ in range(n)]
        self.progress = widgets.HTML()
        self.prompt = widgets.HTML()
        self.answer_area = widgets.Textarea(placeholder="Your answer, in your own words, before you look.",
                                            rows=6, layout=widgets.Layout(width="100%"))
        self.reveal_button = widgets.Button(description="Show the model answer", button_style="primary",
                                            layout=widgets.Layout(width="auto"))
        self.message = widgets.HTML()
        self.model_answer = widgets.HTML()
        self.coverage = widgets.HTML()
        self.checkboxes: list = []
        self.reveal_area = widgets.VBox()  # empty until the current question is revealed
        self.prev_button = widgets.Button(description="Previous", icon="arrow-left")
        self.next_button = widgets.Button(description="Next", icon="arrow-right")
        self.total = widgets.HTML()
        self.answer_area.observe(self._on_text, names="value")
        self.reveal_button.on_click(lambda _: self.reveal())
        self.prev_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())
        self.widget = widgets.VBox([self.progress, self.prompt, self.answer_area,
                                    widgets.HBox([self.reveal_button]), self.message, self.reveal_area,
                                    widgets.HBox([self.prev_button, self.next_button]), self.total])
        self._refused = False  # whether the current question's reveal was refused (then the count updates live)
        self._show()

    @property
    def question(self) -> Question:
        """The question on screen."""
        return self.questions[self.index]

    def reveal(self) -> bool:
        """Show the model answer if enough words are written; otherwise say how many are missing."""
        missing = self.min_words - count_words(self.answers[self.index])
        if missing > 0 and not self.revealed[self.index]:
            self._refused = True
            self._update_message()
            return False
        self.revealed[self.index] = True
        self._show()
        return True

    def go_to(self, index: int) -> None:
        """Show question ``index`` (0-based), keeping every question's state."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.questions):
            raise ValueError(f"index must be an int in [0, {len(self.questions) - 1}], got {index!r}.")
        self.index, self._refused = index, False
        self._show()

    def next(self) -> None:
        """The next question; does nothing on the last one."""
        if self.index < len(self.questions) - 1:
            self.go_to(self.index + 1)

    def previous(self) -> None:
        """The previous question; does nothing on the first one."""
        if self.index > 0:
            self.go_to(self.index - 1)

    def summary(self) -> list[dict]:
        """Per question: ``{"source", "words", "revealed", "covered", "of"}`` (covered = key points ticked)."""
        return [{"source": q.source, "words": count_words(a), "revealed": r, "covered": len(t),
                 "of": len(q.key_points)}
                for q, a, r, t in zip(self.questions, self.answers, self.revealed, self.ticked)]

    def score(self) -> tuple[int, int]:
        """``(key points ticked, key points available)`` over the revealed questions."""
        rows = [row for row in self.summary() if row["revealed"]]
        return sum(r["covered"] for r in rows), sum(r["of"] for r in rows)

    def _show(self) -> None:
        """Redraw everything for the current question from the state attributes."""
        import ipywidgets as widgets

        q, i, n = self.question, self.index, len(self.questions)
        self.progress.value = f"<b>Question {i + 1} of {n}</b> · {html.escape(q.source)}"
        self.prompt.value = f"<p style='font-size:1.05em'>{html.escape(q.prompt)}</p>"
        self.answer_area.value = self.answers[i]  # fires _on_text, which only stores the same text
        self.prev_button.disabled, self.next_button.disabled = i == 0, i == n - 1
        self.reveal_button.disabled = self.revealed[i]
        self.checkboxes = []
        if self.revealed[i]:
            self.model_answer.value = "<b>Model answer</b>" + _paragraphs(q.model_answer)
            for k, point in enumerate(q.key_points):
                box = widgets.Checkbox(value=k in self.ticked[i], description=point, indent=False,
                                       layout=widgets.Layout(width="100%"))
                box.observe(lambda change, k=k: self._on_tick(k, change["new"]), names="value")
                self.checkboxes.append(box)
            self.reveal_area.children = [self.model_answer, widgets.HTML("<b>Tick the points your answer made:</b>"),
                                         *self.checkboxes, self.coverage]
        else:
            self.model_answer.value = ""
            self.reveal_area.children = []
        self._update_message()
        self._update_scores()

    def _on_text(self, change) -> None:
        self.answers[self.index] = change["new"]
        self._update_message()

    def _on_tick(self, k: int, value: bool) -> None:
        (self.ticked[self.index].add if value else self.ticked[self.index].discard)(k)
        self._update_scores()

    def _update_message(self) -> None:
        written = count_words(self.answers[self.index])
        missing = self.min_words - written
        if self.revealed[self.index]:
            self.message.value = ""
        elif self._refused and missing > 0:
            self.message.value = _note(f"Not yet: write {missing} more word{'s' if missing != 1 else ''} first "
                                       f"({written} so far, {self.min_words} needed). Putting it in your own words "
                                       "is what makes it stick.", warn=True)
        elif missing > 0:
            self.message.value = _note(f"{written} of {self.min_words} words: the model answer opens once you "
                                       "have written your own.")
        else:
            self.message.value = _note(f"{written} words: press <i>Show the model answer</i> to compare.")

    def _update_scores(self) -> None:
        k, m = len(self.ticked[self.index]), len(self.question.key_points)
        self.coverage.value = f"You covered {k} of {m} key points."
        covered, total = self.score()
        done = sum(self.revealed)
        self.total.value = (f"<small>Overall: {covered} of {total} key points over {done} revealed "
                            f"question{'s' if done != 1 else ''}.</small>" if done else "")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


__all__ = ["SELF_CHECK", "Question", "SelfCheckQuiz", "count_words"]
