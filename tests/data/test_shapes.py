"""course_utils.data.shapes: procedural shapes: deterministic, coloured as captioned; captions parse back."""

import numpy as np
import pytest
import torch

from course_utils.data import COLORS, SHAPES, make_shapes, parse_caption
from course_utils.data.shapes import caption


def test_shapes_are_deterministic_and_captioned():
    a, b = make_shapes(50, seed=3), make_shapes(50, seed=3)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, make_shapes(50, seed=4).images)
    assert a.images.shape == (50, 3, 32, 32) and a.images.min() >= -1 and a.images.max() <= 1
    names = list(COLORS)
    for i in range(50):
        s, c, bg = SHAPES[a.shape[i]], names[a.color[i]], names[a.background[i]]
        assert a.captions[i] == f"a {c} {s} on a {bg} background"
        assert c != bg


def test_shapes_pixels_have_the_captioned_colours():
    d = make_shapes(30, seed=0)
    palette = torch.tensor(list(COLORS.values())) * 2 - 1
    for i in range(30):
        img = d.images[i].reshape(3, -1).T  # (H*W, 3)
        corner = d.images[i][:, 0, 0]
        torch.testing.assert_close(corner, palette[d.background[i]], atol=1e-6, rtol=0)  # background in the corner
        dist_fg = (img - palette[d.color[i]]).norm(dim=1)
        assert (dist_fg < 1e-5).sum() >= 20  # a solid interior of the shape's colour


def test_each_shape_kind_covers_a_sensible_area():
    d = make_shapes(300, seed=1)
    palette = torch.tensor(list(COLORS.values())) * 2 - 1
    for k in range(len(SHAPES)):
        idx = (d.shape == k).nonzero()[:, 0]
        fracs = []
        for i in idx:
            img = d.images[i].reshape(3, -1).T
            fracs.append(((img - palette[d.background[i]]).norm(dim=1) > 1e-4).float().mean().item())
        assert 0.08 < np.mean(fracs) < 0.45, (SHAPES[k], np.mean(fracs))


def test_parse_caption_inverts_caption():
    for s, shape in enumerate(SHAPES):
        for c, color in enumerate(COLORS):
            for b, bg in enumerate(COLORS):
                if b != c:
                    assert parse_caption(caption(shape, color, bg)) == (s, c, b)


@pytest.mark.parametrize("bad", ["a red circle", "a pink circle on a blue background", "red circle on blue", ""])
def test_parse_caption_refuses_what_it_cannot_read(bad):
    with pytest.raises(ValueError, match="captions look like"):
        parse_caption(bad)
