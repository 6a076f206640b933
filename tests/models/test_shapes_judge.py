"""course_utils.models.shapes_judge: the judge network's heads, captions and input checks."""

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.models.shapes_judge import ShapesJudge


def test_judge_shapes_and_errors():
    judge = ShapesJudge().eval()
    x = make_shapes(4, seed=0).images
    out = judge(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"shape": (4, 3), "color": (4, 6), "background": (4, 6),
                                                            "picture": (4, 2)}
    assert len(judge.captions(x)) == 4 and all(c == "noise" or c.startswith("a ") for c in judge.captions(x))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        judge(torch.zeros(2, 1, 16, 16))
