"""course_utils.course.quiz_questions: the self-check questions' content (sources, model answers, key points)."""

import pytest

from course_utils.course.quiz import count_words
from course_utils.course.quiz_questions import SELF_CHECK, Question


def by_source(source):
    return next(q for q in SELF_CHECK if q.source == source)


def test_self_check_has_the_seed_questions():
    sources = [q.source for q in SELF_CHECK]
    assert len(SELF_CHECK) == 11 and len(set(sources)) == 11
    assert sorted(s for s in sources if s.startswith("Retrieval")) == [f"Retrieval prompt {i}" for i in range(1, 5)]
    assert sorted(s for s in sources if s.startswith("Interview")) == [f"Interview Q{i}" for i in range(1, 8)]
    for q in SELF_CHECK:
        assert q.prompt.strip() and q.model_answer.strip(), q.source
        assert 3 <= len(q.key_points) <= 5, q.source
        assert all(p.strip() and len(p) <= 90 for p in q.key_points), q.source  # short, one idea each
        assert count_words(q.model_answer) >= 60, q.source  # a paragraph, not a slogan


def test_model_answers_state_the_key_formulas_and_figures():
    rp1 = by_source("Retrieval prompt 1").model_answer
    assert ("sqrt" in rp1 or "√" in rp1) and "alpha" in rp1 and "N(0, I)" in rp1 and "Var(x_t)" in rp1
    for source in ("Retrieval prompt 2", "Interview Q3"):
        answer = by_source(source).model_answer
        assert "ε_uncond + w · (ε_cond − ε_uncond)" in answer and "10%" in answer, source
        # The course's own measurement (notebook 05), the same three numbers in both answers.
        assert all(f in answer for f in ("8.9%", "61.7%", "98.3%", "180")), source
    assert "η = 0" in by_source("Interview Q5").model_answer and "1.04x" in by_source("Interview Q5").model_answer
    latent = by_source("Interview Q4").model_answer
    # 512*512*3 = 786,432 and 64*64*4 = 16,384: 48x; ours 32*32*3 = 3,072 and 8*8*4 = 256: 12x.
    assert all(s in latent for s in ("64×64×4", "48x", "8×8×4", "12x"))
    dit = by_source("Retrieval prompt 4").model_answer
    assert all(s in dit for s in ("patchif", "adaLN-Zero", "Stable Diffusion 3", "FLUX", "inductive bias"))
    prod = by_source("Retrieval prompt 3").model_answer
    steps = ["1. Fewer steps", "2. Half precision", "3. torch.compile", "4. Cache text embeddings",
             "5. Decode the VAE in fp32"]
    order = [prod.find(s) for s in steps]
    assert -1 not in order and order == sorted(order)  # the priority order: steps, precision, compile, serving, VAE
    assert all(s in prod for s in ("SDXL-Turbo", "20–30%", "1.07x", "A10G itself"))


def test_question_validates_its_fields():
    with pytest.raises(ValueError, match="prompt"):
        Question("s", "  ", "answer", ("a",))
    with pytest.raises(ValueError, match="key_points"):
        Question("s", "p", "answer", ())
    with pytest.raises(ValueError, match="key_points"):
        Question("s", "p", "answer", "one string, not a sequence")
    assert Question("s", "p", "a", ["x", "y"]).key_points == ("x", "y")  # a list is kept as a tuple
