"""BatchIterator and the batch-level augmentations."""
import pytest
import torch

from attn_lesson import BatchIterator, random_crop_flip, random_shift


def _epoch_ids(it):
    return [y.tolist() for _, y in it]


@pytest.fixture
def ids():
    n = 103
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return images, torch.arange(n)


def test_len_with_and_without_drop_last(ids):
    images, labels = ids
    assert len(BatchIterator(images, labels, 10)) == 11
    assert len(BatchIterator(images, labels, 10, drop_last=True)) == 10
    assert len(BatchIterator(images[:100], labels[:100], 10)) == 10
    assert len(BatchIterator(images[:100], labels[:100], 10, drop_last=True)) == 10
    assert len(list(BatchIterator(images, labels, 10))) == 11
    assert len(list(BatchIterator(images, labels, 10, drop_last=True))) == 10


def test_every_sample_once_per_epoch_and_pairs_kept(ids):
    images, labels = ids
    it = BatchIterator(images, labels, 10, shuffle=True, seed=3)
    for _ in range(3):
        seen = []
        for x, y in it:
            assert x.shape[0] == y.shape[0] <= 10
            assert torch.equal(x[:, 0, 0, 0].long(), y)  # image and label stay together
            seen += y.tolist()
        assert sorted(seen) == list(range(103))
    dropped = [i for b in _epoch_ids(BatchIterator(images, labels, 10, drop_last=True, seed=1)) for i in b]
    assert len(dropped) == len(set(dropped)) == 100


def test_order_changes_between_epochs_and_repeats_for_a_seed(ids):
    images, labels = ids
    a = BatchIterator(images, labels, 16, seed=7)
    b = BatchIterator(images, labels, 16, seed=7)
    c = BatchIterator(images, labels, 16, seed=8)
    a1, a2 = _epoch_ids(a), _epoch_ids(a)
    assert a1 != a2, "each epoch needs a fresh permutation"
    assert [_epoch_ids(b), _epoch_ids(b)] == [a1, a2]
    assert _epoch_ids(c) != a1
    assert sum(a1, []) != list(range(103))  # actually shuffled


def test_no_shuffle_keeps_order(ids):
    images, labels = ids
    flat = sum(_epoch_ids(BatchIterator(images, labels, 25, shuffle=False)), [])
    assert flat == list(range(103))


def test_augment_applied_to_whole_batches(ids):
    images, labels = ids
    calls = []

    def aug(x, g):
        assert isinstance(g, torch.Generator)
        calls.append(x.shape[0])
        return x + 1000

    for x, y in BatchIterator(images, labels, 50, augment=aug, shuffle=False):
        assert torch.equal(x[:, 0, 0, 0].long(), y + 1000)
    assert calls == [50, 50, 3]


def test_bad_arguments(ids):
    images, labels = ids
    with pytest.raises(ValueError, match="same length.*103 and 102"):
        BatchIterator(images, labels[:-1])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        BatchIterator(images, labels, 0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        BatchIterator(images, labels, seed=-1)


# --------------------------------------------------------------------------- augmentation
def _single_pixels(b=300, c=2, size=15, at=7, value=0.8):
    x = torch.zeros(b, c, size, size)
    x[:, :, at, at] = value
    return x


@pytest.mark.parametrize("max_shift", [1, 3])
def test_random_shift_moves_a_pixel_by_at_most_max_shift(max_shift):
    x = _single_pixels()
    g = torch.Generator().manual_seed(0)
    out = random_shift(max_shift)(x, g)
    assert out.shape == x.shape
    # far from the border nothing falls off: intensity preserved in every image and channel
    assert torch.allclose(out.sum((2, 3)), x.sum((2, 3)))
    dys, dxs = [], []
    for i in range(x.shape[0]):
        lit = torch.nonzero(out[i, 0])
        assert lit.shape[0] == 1 and out[i, 0, lit[0, 0], lit[0, 1]] == pytest.approx(0.8)
        assert torch.equal(out[i, 0], out[i, 1])  # one shift per image, same for all channels
        dys.append(int(lit[0, 0]) - 7)
        dxs.append(int(lit[0, 1]) - 7)
    assert max(map(abs, dys)) <= max_shift and max(map(abs, dxs)) <= max_shift
    # every offset in [-max_shift, max_shift] occurs along both axes (300 draws)
    assert set(dys) == set(dxs) == set(range(-max_shift, max_shift + 1))


def test_random_shift_is_deterministic_for_a_generator():
    x = torch.rand(20, 1, 12, 12)
    a = random_shift(2)(x, torch.Generator().manual_seed(4))
    b = random_shift(2)(x, torch.Generator().manual_seed(4))
    c = random_shift(2)(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_shift_zero_fill_at_the_border():
    x = _single_pixels(b=200, c=1, at=0)
    out = random_shift(2)(x, torch.Generator().manual_seed(1))
    kept = out.sum((1, 2, 3))
    assert ((kept == 0) | torch.isclose(kept, torch.tensor(0.8))).all()
    assert (kept == 0).any()  # shifted off the canvas, not wrapped around
    assert out[:, :, 3:, :].sum() == 0 and out[:, :, :, 3:].sum() == 0


def test_random_shift_zero_is_identity_and_negative_rejected():
    x = torch.rand(5, 3, 8, 8)
    assert torch.equal(random_shift(0)(x, torch.Generator().manual_seed(0)), x)
    with pytest.raises(ValueError, match="max_shift must be >= 0, got -1"):
        random_shift(-1)


def test_random_crop_flip_shape_and_flips():
    x = torch.rand(64, 3, 32, 32)
    out = random_crop_flip(4)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    flip_only = random_crop_flip(0)(x, torch.Generator().manual_seed(0))
    same = [(torch.equal(o, xi), torch.equal(o, xi.flip(2))) for o, xi in zip(flip_only, x)]
    assert all(s or f for s, f in same)
    assert any(s for s, _ in same) and any(f for _, f in same)
    with pytest.raises(ValueError, match="pad"):
        random_crop_flip(-2)


def test_batch_iterator_with_shift_augmentation_keeps_labels():
    x = _single_pixels(b=40, c=1)
    y = torch.arange(40)
    it = BatchIterator(x, y, 16, augment=random_shift(2), seed=0)
    seen = []
    for xb, yb in it:
        assert xb.shape[1:] == (1, 15, 15)
        assert torch.allclose(xb.sum((1, 2, 3)), torch.full((xb.shape[0],), 0.8))
        seen += yb.tolist()
    assert sorted(seen) == list(range(40))
