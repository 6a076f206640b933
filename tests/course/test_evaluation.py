"""course_utils.course.evaluation: FID's dependence on N and its blindness to copying, measured (notebook 10)."""

import pytest
import torch

from course_utils import metrics
from course_utils.course import evaluation
from course_utils.data import load_digits


def test_fid_falls_with_n_and_the_floor_is_measured_at_each_n():
    _, half_b = metrics.reference_split()
    rows = evaluation.fid_by_sample_count(half_b, [50, 200, 898])
    assert [r["n"] for r in rows] == [50, 200, 898]
    assert rows[0]["floor"] > rows[1]["floor"] > rows[2]["floor"]  # the bias shrinks as N grows
    assert rows[-1]["floor"] == pytest.approx(metrics.floor()["fid"], rel=1e-6)  # all of half B: the floor
    noise = torch.rand(898, 1, 16, 16) * 2 - 1
    bad = evaluation.fid_by_sample_count(noise, [50, 898])
    assert all(r["ratio"] > 20 for r in bad)  # noise is far from digits at any N
    with pytest.raises(ValueError, match=r"counts must lie in \[2, 898\]"):
        evaluation.fid_by_sample_count(half_b, [1000])
    with pytest.raises(ValueError, match="at least max"):
        evaluation.fid_by_sample_count(half_b[:10], [50])


def test_a_memorizer_scores_like_real_data_but_the_nearest_neighbour_check_catches_it():
    train, _ = load_digits()
    copies = evaluation.memorizer(train, metrics.NUM_SAMPLES)
    assert metrics.digits_fid(copies) < 1.5 * metrics.floor()["fid"]  # FID cannot tell
    report = evaluation.memorization_report(copies, train)
    assert report["copies"] == 1.0 and report["median"] == 0.0  # every sample is a training image
    fresh = (copies + 0.3 * torch.randn(copies.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert evaluation.memorization_report(fresh, train)["copies"] < 0.05
    with pytest.raises(ValueError, match="quantile"):
        evaluation.memorization_report(copies, train, quantile=1.0)
    with pytest.raises(ValueError, match="positive integer"):
        evaluation.memorizer(train, 0)
