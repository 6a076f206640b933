"""course_utils.course.quiz: the notebook-10 self-check quiz widget, driven headless (ipywidgets 7.7 and 8)."""

import re

import pytest

from course_utils.course.quiz import SELF_CHECK, Question, SelfCheckQuiz

ENOUGH = " ".join(["word"] * 15)  # exactly the default min_words


def small_quiz(min_words=3):
    questions = [Question(f"Q{i}", f"prompt {i}", f"answer {i}", ("one", "two", "three")[: i + 1])
                 for i in range(3)]
    return SelfCheckQuiz(questions, min_words=min_words)


@pytest.mark.widgets
def test_progress_and_prompt_show_the_current_question():
    quiz = SelfCheckQuiz()
    assert quiz.index == 0 and "Question 1 of 11" in quiz.progress.value
    assert "Retrieval prompt 1" in quiz.progress.value
    quiz.next_button.click()
    quiz.next_button.click()
    assert "Question 3 of 11" in quiz.progress.value and "Interview Q2" in quiz.progress.value
    assert quiz.question is SELF_CHECK[2]


@pytest.mark.widgets
def test_reveal_is_refused_below_min_words():
    quiz = SelfCheckQuiz()
    quiz.reveal_button.click()
    assert not quiz.revealed[0] and quiz.reveal_area.children == () and quiz.model_answer.value == ""
    assert "15 more words" in quiz.message.value
    quiz.answer_area.value = " ".join(["word"] * 12)
    assert quiz.answers[0].count("word") == 12
    assert quiz.reveal() is False
    assert "3 more words" in quiz.message.value and "12 so far" in quiz.message.value
    quiz.answer_area.value = " ".join(["word"] * 14)  # the count in the message follows the typing
    assert "1 more word " in quiz.message.value
    assert not quiz.revealed[0] and quiz.checkboxes == []


@pytest.mark.widgets
def test_reveal_opens_at_min_words_and_ticks_update_the_score():
    quiz = SelfCheckQuiz()
    quiz.answer_area.value = ENOUGH
    quiz.reveal_button.click()
    q = SELF_CHECK[0]
    assert quiz.revealed[0] and quiz.reveal_button.disabled
    assert "√ᾱ_t" in quiz.model_answer.value and quiz.model_answer in quiz.reveal_area.children
    assert [b.description for b in quiz.checkboxes] == list(q.key_points)
    assert quiz.coverage.value.startswith(f"You covered 0 of {len(q.key_points)} key points")
    quiz.checkboxes[0].value = True
    quiz.checkboxes[2].value = True
    assert quiz.ticked[0] == {0, 2}
    assert f"You covered 2 of {len(q.key_points)}" in quiz.coverage.value
    assert quiz.score() == (2, len(q.key_points))
    quiz.checkboxes[0].value = False
    assert quiz.ticked[0] == {2} and quiz.score() == (1, len(q.key_points))
    assert "Overall: 1 of" in quiz.total.value


@pytest.mark.widgets
def test_min_words_is_configurable():
    quiz = small_quiz(min_words=3)
    quiz.answer_area.value = "two words"
    assert not quiz.reveal() and "1 more word " in quiz.message.value
    quiz.answer_area.value = "now three words"
    assert quiz.reveal() and quiz.revealed == [True, False, False]


@pytest.mark.widgets
def test_navigation_keeps_state_and_clamps_at_the_ends():
    quiz = small_quiz()
    quiz.prev_button.click()  # on the first question: nothing moves, nothing breaks
    assert quiz.index == 0 and quiz.prev_button.disabled and not quiz.next_button.disabled
    quiz.answer_area.value = "first answer here"
    quiz.reveal_button.click()
    quiz.checkboxes[0].value = True
    quiz.next_button.click()
    assert quiz.index == 1 and quiz.answer_area.value == "" and quiz.reveal_area.children == ()
    quiz.answer_area.value = "second one, unrevealed"
    quiz.next_button.click()
    quiz.next_button.click()  # past the last question: stays
    assert quiz.index == 2 and quiz.next_button.disabled
    quiz.previous()
    assert quiz.answer_area.value == "second one, unrevealed" and not quiz.revealed[1]
    quiz.prev_button.click()
    assert quiz.index == 0 and quiz.answer_area.value == "first answer here" and quiz.revealed[0]
    assert [b.value for b in quiz.checkboxes] == [True] and "You covered 1 of 1" in quiz.coverage.value
    assert quiz.answers == ["first answer here", "second one, unrevealed", ""]
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        quiz.go_to(3)


@pytest.mark.widgets
def test_summary_and_score():
    quiz = small_quiz()
    assert quiz.score() == (0, 0)  # nothing revealed yet
    quiz.go_to(2)
    quiz.answer_area.value = "a b c d"
    quiz.reveal()
    quiz.checkboxes[1].value = True
    quiz.go_to(1)
    quiz.answer_area.value = "x y"
    assert quiz.summary() == [
        {"source": "Q0", "words": 0, "revealed": False, "covered": 0, "of": 1},
        {"source": "Q1", "words": 2, "revealed": False, "covered": 0, "of": 2},
        {"source": "Q2", "words": 4, "revealed": True, "covered": 1, "of": 3},
    ]
    assert quiz.score() == (1, 3)


@pytest.mark.widgets
def test_bad_constructor_input():
    with pytest.raises(ValueError, match="at least one Question"):
        SelfCheckQuiz([])
    with pytest.raises(TypeError, match=r"questions\[1\] must be a course_utils.course.quiz.Question, got str"):
        SelfCheckQuiz([SELF_CHECK[0], "What is DDIM?"])
    with pytest.raises(TypeError, match="sequence of Question"):
        SelfCheckQuiz("What is DDIM?")
    for bad in (0, -3):
        with pytest.raises(ValueError, match="positive int"):
            SelfCheckQuiz(min_words=bad)
    for bad in (2.5, "15", True):
        with pytest.raises(TypeError, match="positive int"):
            SelfCheckQuiz(min_words=bad)


@pytest.mark.widgets
def test_displays_as_one_widget():
    import ipywidgets

    quiz = SelfCheckQuiz()
    assert isinstance(quiz.widget, ipywidgets.VBox) and quiz.answer_area in quiz.widget.children
    shown = []
    import IPython.display

    original = IPython.display.display
    IPython.display.display = shown.append
    try:
        quiz._ipython_display_()
    finally:
        IPython.display.display = original
    assert shown == [quiz.widget]
    assert not re.search(r"<script", quiz.model_answer.value + quiz.prompt.value)
