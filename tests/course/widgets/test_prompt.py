"""course_utils.course.widgets.prompt: the prompt explorer generates, judges and reports (small random text model)."""

import pytest
import torch


@pytest.mark.widgets
def test_prompt_explorer_generates_and_reports(text_model):
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.metrics.shapes_judge import ShapesJudge
    from course_utils.course.widgets import PromptExplorer

    judge = ShapesJudge().eval()
    # the random text model draws 16x16 images; the judge reads 32x32, so scale them up for it
    judge_32 = type("J", (), {"captions": lambda self, x: judge.captions(
        torch.nn.functional.interpolate(x, size=32))})()
    ex = PromptExplorer(text_model, judge=judge_32, n=2, steps=2)
    ex.generate()
    assert ex.images.shape == (2, 3, 16, 16) and len(ex.readings) == 2
    assert "w = 3" in ex.status.value and ex.adherence is not None
    first = ex.images.clone()
    ex.guidance.value = 8.0
    ex.generate()
    assert not torch.equal(first, ex.images)
    ex.prompt.value = "a pink circle"
    ex.generate()
    assert "unknown words" in ex.status.value and ex.images.shape == (2, 3, 16, 16)
    ex.prompt.value = "a red circle"
    ex.generate()
    assert "not a full caption" in ex.status.value
