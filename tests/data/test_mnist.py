"""course_utils.data.mnist: the IDX reader and load_mnist, on files written here in the real format."""

import gzip
import struct

import numpy as np
import pytest
import torch

from course_utils.data import load_mnist, read_idx


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
