"""Data sets: shapes, ranges, determinism, captions, and the MNIST reader on files we write."""

import gzip
import struct

import numpy as np
import pytest
import torch

from course_utils.data import COLORS, SHAPES, load_digits, load_mnist, make_shapes, make_toy2d, read_idx


def test_digits():
    x, y = load_digits()
    assert x.shape == (1797, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert set(y.tolist()) == set(range(10))
    xtr, ytr = load_digits(split="train")
    xte, yte = load_digits(split="test")
    assert (len(xtr), len(xte)) == (1437, 360)
    # train + test is a partition of all: the same multiset of (image, label) rows.
    rows = lambda xs, ys: sorted(map(tuple, torch.cat([xs.flatten(1), ys[:, None].float()], 1).tolist()))  # noqa: E731
    assert rows(torch.cat([xtr, xte]), torch.cat([ytr, yte])) == rows(x, y)
    assert load_digits(size=8)[0].shape == (1797, 1, 8, 8)


def test_digits_bad_split():
    with pytest.raises(ValueError, match="'all', 'train', 'test'"):
        load_digits(split="val")


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


@pytest.mark.parametrize("name", ["moons", "swiss_roll", "gaussian_mixture"])
def test_toy2d(name):
    p = make_toy2d(name, 500, seed=1)
    assert p.shape == (500, 2) and p.dtype == torch.float32 and torch.isfinite(p).all()
    assert torch.equal(p, make_toy2d(name, 500, seed=1))
    assert 0.3 < p.std().item() < 3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_toy2d("spiral"), "'moons', 'swiss_roll', 'gaussian_mixture'"),
        (lambda: make_toy2d("moons", 0), "positive integer"),
        (lambda: make_toy2d("moons", noise=-1), ">= 0"),
        (lambda: make_shapes(10, size=8), "at least 16"),
        (lambda: make_shapes(0), "positive integer"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def write_idx(path, array: np.ndarray, compress: bool = False):
    """Write an IDX file exactly as LeCun's format specifies (ubyte data, big-endian dims)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind, folder", [("mnist", "MNIST"), ("fashion", "FashionMNIST")])
@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_on_files_in_the_real_format(tmp_path, kind, folder, compress):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28))
    images[0] = 0
    images[1] = 255
    labels = np.array([3, 1, 4, 1, 5])
    write_idx(raw / "t10k-images-idx3-ubyte", images, compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels, compress)
    x, y = load_mnist(tmp_path, kind=kind, split="test")
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [3, 1, 4, 1, 5]
    assert x[0].max() == -1 and x[1].min() == 1
    torch.testing.assert_close(x[2, 0], torch.from_numpy(images[2] / 255.0 * 2 - 1).float())
    assert load_mnist(tmp_path, kind=kind, split="test", size=16)[0].shape == (5, 1, 16, 16)


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path, split="train")
    with pytest.raises(ValueError, match="'mnist', 'fashion'"):
        load_mnist(tmp_path, kind="kmnist")
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    trunc = write_idx(tmp_path / "trunc", np.zeros((2, 3, 3)))
    trunc.write_bytes(trunc.read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(trunc)
