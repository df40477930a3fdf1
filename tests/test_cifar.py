"""load_cifar10 on a small archive written in CIFAR-10's own python format (no network)."""
import pickle
import tarfile
import time

import numpy as np
import pytest
import torch

from attn_lesson import DataUnavailableError, load_cifar10
from attn_lesson.data import CIFAR_ARCHIVE, CIFAR_CLASSES, CIFAR_DIR

PER_BATCH = 4  # images in each of data_batch_1..5
N_TEST = 3


def _batch(rng, n, name):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    return {b"batch_label": name.encode(), b"labels": labels, b"data": data,
            b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)]}


@pytest.fixture
def cifar_archive(tmp_path):
    """Write cifar-10-python.tar.gz into tmp_path; return (root, {name: batch dict})."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src" / CIFAR_DIR
    src.mkdir(parents=True)
    batches = {f"data_batch_{i}": _batch(rng, PER_BATCH, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, N_TEST, "testing batch 1 of 1")
    # a pixel we can name: image 1 of test_batch, channel G (1), row 5, column 7
    batches["test_batch"][b"data"][1, 1 * 1024 + 5 * 32 + 7] = 200
    batches["test_batch"][b"data"][1, 0 * 1024 + 5 * 32 + 7] = 10   # R at the same place
    batches["test_batch"][b"data"][1, 2 * 1024 + 7 * 32 + 5] = 255  # B at (row 7, col 5)
    for name, d in batches.items():
        with open(src / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    with open(src / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                     b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}, f, protocol=2)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / CIFAR_ARCHIVE, "w:gz") as tar:
        tar.add(src, arcname=CIFAR_DIR)
    return root, batches


def _expected(batches, names):
    x = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32)
    y = np.concatenate([batches[n][b"labels"] for n in names])
    return torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(y)


def test_train_split_from_archive(cifar_archive):
    root, batches = cifar_archive
    images, labels = load_cifar10(root, "train", download=False)
    assert (root / CIFAR_DIR / "data_batch_3").is_file(), "archive should be extracted in place"
    assert images.shape == (5 * PER_BATCH, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (5 * PER_BATCH,) and labels.dtype == torch.int64
    assert images.min() >= 0 and images.max() <= 1
    x, y = _expected(batches, [f"data_batch_{i}" for i in range(1, 6)])
    assert torch.allclose(images, x) and torch.equal(labels, y)
    # batch order: the first images come from data_batch_1, the last from data_batch_5
    assert labels[:PER_BATCH].tolist() == batches["data_batch_1"][b"labels"]
    assert labels[-PER_BATCH:].tolist() == batches["data_batch_5"][b"labels"]


def test_test_split_pixel_layout(cifar_archive):
    root, batches = cifar_archive
    images, labels = load_cifar10(root, "test", download=False)
    assert images.shape == (N_TEST, 3, 32, 32)
    assert labels.tolist() == batches["test_batch"][b"labels"]
    # rows are R plane, G plane, B plane, each 32x32 row-major
    assert images[1, 1, 5, 7].item() == pytest.approx(200 / 255)
    assert images[1, 0, 5, 7].item() == pytest.approx(10 / 255)
    assert images[1, 2, 7, 5].item() == pytest.approx(1.0)
    raw = batches["test_batch"][b"data"][2]
    assert images[2, 2, 31, 0].item() == pytest.approx(raw[2 * 1024 + 31 * 32] / 255)
    assert images[2, 0, 0, 31].item() == pytest.approx(raw[31] / 255)


def test_limit_and_extracted_folder_reused(cifar_archive):
    root, batches = cifar_archive
    full, _ = load_cifar10(root, "train", download=False)
    (root / CIFAR_ARCHIVE).unlink()  # the extracted folder alone is enough now
    images, labels = load_cifar10(root, "train", download=False, limit=6)
    assert images.shape == (6, 3, 32, 32) and labels.shape == (6,)
    assert torch.equal(images, full[:6])
    test_images, _ = load_cifar10(root, "test", download=True, limit=2)  # no network needed
    assert test_images.shape == (2, 3, 32, 32)


def test_missing_data_without_download(tmp_path):
    with pytest.raises(DataUnavailableError, match="cifar-10-python.tar.gz") as exc:
        load_cifar10(tmp_path, "train", download=False)
    msg = str(exc.value)
    assert "download=False" in msg and str(tmp_path.resolve()) in msg
    assert isinstance(exc.value, RuntimeError)


def test_failed_download_gives_clear_error(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    # port 9 (discard) on localhost refuses the connection at once: an offline stand-in
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url",
                        "http://127.0.0.1:9/cifar-10-python.tar.gz")
    t0 = time.perf_counter()
    for _ in range(2):  # a failed attempt must not leave a broken archive behind
        with pytest.raises(DataUnavailableError, match="download failed") as exc:
            load_cifar10(tmp_path, "train", download=True)
        msg = str(exc.value)
        assert CIFAR_ARCHIVE in msg and "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
    assert time.perf_counter() - t0 < 10


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'valid'"):
        load_cifar10(tmp_path, "valid", download=False)


def test_corrupt_batch_is_reported(cifar_archive):
    root, _ = cifar_archive
    load_cifar10(root, "test", download=False)
    with open(root / CIFAR_DIR / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        load_cifar10(root, "test", download=False)
