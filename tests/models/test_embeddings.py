"""course_utils.models.embeddings: sinusoidal timestep embeddings, timestep broadcasting and class embeddings."""

import math

import pytest
import torch

from course_utils.models import timestep_embedding
from course_utils.models.embeddings import add_class_embedding, broadcast_timesteps


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 1, 500]), 8)
    assert e.shape == (3, 8)
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos(0) = 1, sin(0) = 0
    torch.testing.assert_close((e**2).reshape(3, 2, 4).sum(1), torch.ones(3, 4))  # cos^2 + sin^2 = 1
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(torch.tensor([1]), 7)


def test_timestep_embedding_frequencies_run_from_one_to_one_over_max_period():
    # f_i = max_period^(-i / (d/2)): with d = 8, max_period = 10^4 that is 1, 0.1, 0.01, 0.001. At t = 3 the
    # first cosine is cos(3 * 1) and the last sine sin(3 * 0.001).
    e = timestep_embedding(torch.tensor([3.0]), 8)[0]
    freqs = [10.0 ** (-i) for i in range(4)]
    torch.testing.assert_close(e, torch.tensor([math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]))
    slow = timestep_embedding(torch.tensor([3.0]), 8, max_period=100.0)[0]  # f_i = 100^(-i/4) = 1, 0.316, 0.1, 0.0316
    assert slow[3].item() == pytest.approx(math.cos(3 * 100 ** (-3 / 4)))


def test_timestep_embedding_refuses_a_batch_that_is_not_one_dimensional():
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        timestep_embedding(torch.zeros(2, 2), 8)
    with pytest.raises(ValueError, match="positive even"):
        timestep_embedding(torch.tensor([1]), 0)


def test_broadcast_timesteps_expands_a_scalar_and_checks_a_batch():
    x = torch.zeros(3, 1, 4, 4)
    assert broadcast_timesteps(7, x).tolist() == [7, 7, 7]
    assert broadcast_timesteps(torch.tensor(7), x).tolist() == [7, 7, 7]
    assert broadcast_timesteps(torch.tensor([1, 2, 3]), x).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"scalar or have shape \(B,\) = \(3,\)"):
        broadcast_timesteps(torch.tensor([1, 2]), x)


def test_class_embedding_adds_the_labels_row_and_the_null_label_by_default():
    table = torch.nn.Embedding(11, 4)  # 10 classes and the null label 10
    emb = torch.zeros(2, 4)
    torch.testing.assert_close(add_class_embedding(emb, table, 10, torch.tensor([3, 10]), "net"), table.weight[[3, 10]])
    torch.testing.assert_close(add_class_embedding(emb, table, 10, None, "net"), table.weight[[10, 10]])
    assert add_class_embedding(emb, None, None, None, "net") is emb  # an unconditional network: unchanged


@pytest.mark.parametrize("table, labels, match", [
    (None, torch.tensor([1, 2]), r"this net is unconditional \(num_classes=None\)"),
    (torch.nn.Embedding(11, 4), torch.tensor([1.0, 2.0]), r"\(B,\) integer tensor"),
    (torch.nn.Embedding(11, 4), torch.tensor([1, 2, 3]), r"\(B,\) integer tensor"),
    (torch.nn.Embedding(11, 4), torch.tensor([1, 11]), r"\[0, 9\] \(or 10 for the null label\)"),
    (torch.nn.Embedding(11, 4), torch.tensor([-1, 0]), r"\[0, 9\] \(or 10 for the null label\)"),
])
def test_class_embedding_refuses_labels_it_cannot_embed(table, labels, match):
    with pytest.raises(ValueError, match=match):
        add_class_embedding(torch.zeros(2, 4), table, None if table is None else 10, labels, "net")
