"""course_utils.families: the three model families, told apart from what a checkpoint records."""

import pytest

from course_utils.families import CONSISTENCY, DIFFUSION, FAMILIES, FLOW_MATCHING, check_family, family_of


@pytest.mark.parametrize("prediction_type, method, family", [
    ("epsilon", None, DIFFUSION),
    ("v_prediction", "ddpm", DIFFUSION),
    ("sample", "ddpm", DIFFUSION),
    ("flow", "flow_matching", FLOW_MATCHING),
    ("flow", None, FLOW_MATCHING),  # the prediction type alone says flow matching
    ("epsilon", "consistency", CONSISTENCY),  # a student predicts the noise, as its teacher did
])
def test_family_of_reads_the_prediction_type_and_the_method(prediction_type, method, family):
    assert family_of(prediction_type, method) == family


def test_the_families_are_the_three_the_course_trains():
    assert FAMILIES == ("diffusion", "flow_matching", "consistency")
    assert all(check_family(f) == f for f in FAMILIES)
    with pytest.raises(ValueError, match="Unknown model family 'gan'. Accepted: 'diffusion', 'flow_matching'"):
        check_family("gan")
