"""The arm factory's pieces for a data-scaling curve (chapter 16): vit arms, an arm's own
training-set size (``n_train``, nested subsets) and its own number of epochs, and how
``scripts/reference.py`` trains and caches such arms without touching the cache keys of the
arms that use none of this."""
import json
import sys
from pathlib import Path

import pytest
import torch

import attn_lesson as al
from attn_lesson import arms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import reference  # noqa: E402

TINY_VIT = {"model": "vit", "patch": 8, "dim": 16, "depth": 1, "heads": 2, "mlp_dim": 32}


def test_a_vit_arm_builds_the_vit_with_its_keyword_arguments():
    spec = {**TINY_VIT, "stem": "conv", "image_size": [40, 40]}
    al.seed_everything(0)
    built = arms.build_model(spec)
    al.seed_everything(0)
    direct = al.ViT(image_size=(40, 40), patch=8, dim=16, depth=1, heads=2, mlp_dim=32, stem="conv")
    assert isinstance(built, al.ViT) and built.stem_kind == "conv" and built.image_size == (40, 40)
    assert repr(built) == repr(direct)
    for (n, t), (_, u) in zip(built.state_dict().items(), direct.state_dict().items()):
        assert torch.equal(t, u), n
    assert arms.build_model({"model": "vit"}).grid == (5, 5)          # ViT's own defaults


def test_a_vit_arm_refuses_unknown_keys_and_pretraining():
    with pytest.raises(ValueError, match=r"unknown keys in a vit arm: \['depht'\]; allowed: .*depth"):
        arms.build_model({**TINY_VIT, "depht": 2})
    with pytest.raises(ValueError, match="pretrain is only for resnet arms, not for a vit arm"):
        arms.build_model({**TINY_VIT, "pretrain": {"digit": 0, "epochs": 1}})
    with pytest.raises(ValueError, match="stem must be one of"):     # the ViT's own checks
        arms.build_model({**TINY_VIT, "stem": "hybrid"})


def test_n_train_and_an_arms_epochs_do_not_change_the_model():
    for spec in ({}, {"attention": {"name": "se", "reduction": 4}}, TINY_VIT):
        extra = {**spec, "n_train": 750, "train": {"epochs": 96, "lr": 0.001}}
        al.seed_everything(0)
        a = arms.build_model(spec)
        al.seed_everything(0)
        b = arms.build_model(extra)
        assert repr(a) == repr(b)
        assert all(torch.equal(t, u) for t, u in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "750", None])
def test_a_bad_n_train_is_refused(bad):
    with pytest.raises(ValueError, match="n_train must be a positive int"):
        arms.build_model({"n_train": bad})
    if bad is not None:                      # arm_data reads a missing or None n_train as "all"
        with pytest.raises(ValueError, match="n_train must be a positive int"):
            arms.arm_data({"n_train": bad}, al.cluttered_digits(4))


def test_arm_data_takes_the_first_n_images_nested():
    full = al.cluttered_digits(12, "train", seed=3)
    assert arms.arm_data({}, full) is full                            # no n_train: the whole set
    small, large = arms.arm_data({"n_train": 4}, full), arms.arm_data({"n_train": 8}, full)
    assert len(small) == 4 and len(large) == 8
    assert torch.equal(small.images, full.images[:4]) and torch.equal(small.labels, full.labels[:4])
    assert torch.equal(small.boxes, large.boxes[:4])                  # nested subsets
    pair = (full.images, full.labels)                                 # (images, targets) pairs too
    x, y = arms.arm_data({"n_train": 5}, pair)
    assert torch.equal(x, full.images[:5]) and torch.equal(y, full.labels[:5])
    assert len(arms.arm_data({"n_train": 12}, full)) == 12           # all of it is allowed
    with pytest.raises(ValueError, match=r"n_train \(13\) exceeds .* \(12 images\)"):
        arms.arm_data({"n_train": 13}, full)
    with pytest.raises(ValueError, match="DigitSet or an \\(images, targets\\) pair"):
        arms.arm_data({"n_train": 2}, full.images)
    with pytest.raises(ValueError, match="an arm must be described by a dict"):
        arms.arm_data([("n_train", 2)], full)


def test_an_arm_may_set_its_own_epochs():
    train = {"epochs": 12, "lr": 0.005, "batch_size": 32, "augment": "shift:2"}
    kw = arms.arm_fit_kwargs(train, {**TINY_VIT, "train": {"epochs": 96, "lr": 0.001,
                                                          "weight_decay": 0.05}})
    assert kw["epochs"] == 96 and kw["lr"] == 0.001 and kw["weight_decay"] == 0.05
    assert kw["batch_size"] == 32 and callable(kw["augment"])
    assert arms.arm_fit_kwargs(train, {})["epochs"] == 12             # the REFERENCE's own
    for bad in (0, 2.0, True, "8"):
        with pytest.raises(ValueError, match="epochs as a positive int"):
            arms.arm_fit_kwargs(train, {"train": {"epochs": bad}})
    with pytest.raises(ValueError, match="may only set"):
        arms.arm_fit_kwargs(train, {"train": {"batch_size": 8}})


def test_train_arm_of_a_vit_equals_seed_build_fit():
    tr, te = arms.make_data({"n_train": 48, "n_test": 16})
    spec = {**TINY_VIT, "n_train": 32, "train": {"epochs": 2, "lr": 0.001}}
    kw = dict(arms.arm_fit_kwargs({"epochs": 1, "batch_size": 16, "lr": 0.005}, spec), progress=False)
    h = arms.train_arm(spec, arms.arm_data(spec, tr), te, seed=2, **kw)
    al.seed_everything(2)
    h2 = al.fit(al.ViT(patch=8, dim=16, depth=1, heads=2, mlp_dim=32), tr.subset(slice(0, 32)), te,
                seed=2, **kw)
    assert len(h.test_acc) == 2 and h.train_loss == h2.train_loss and h.test_acc == h2.test_acc


def test_cache_keys_follow_n_train_and_leave_other_arms_alone(monkeypatch):
    cfg = {"data": {"n_train": 100}, "train": {"epochs": 1}}
    plain, sized = {"attention": {"name": "se", "reduction": 4}}, {"attention": {"name": "se", "reduction": 4},
                                                                   "n_train": 50}
    keys = {reference.run_key(cfg, s, 0, "cpu", "d") for s in
            (plain, sized, {**sized, "n_train": 25}, {**sized, "train": {"epochs": 4}})}
    assert len(keys) == 4
    assert set(reference.training_files(TINY_VIT)) >= {"vit.py", "train.py"}
    # arm_data enters the training-source hash of arms with n_train only: the hashes of every
    # other arm (those of the committed runs of chapters 02-15) are what they were before it existed
    before = {name: reference.training_source_hash(s) for name, s in (("plain", plain), ("sized", sized))}
    monkeypatch.setattr(arms, "arm_data", lambda spec, train: train)      # a different arm_data
    after = {name: reference.training_source_hash(s) for name, s in (("plain", plain), ("sized", sized))}
    assert after["plain"] == before["plain"] and after["sized"] != before["sized"]


def test_reference_run_trains_each_arm_on_its_subset_for_its_epochs(tmp_path, monkeypatch):
    md = tmp_path / "98_tiny.md"
    md.write_text("""# tiny

```{code-cell}
REFERENCE = {
    "data": {"n_train": 48, "n_test": 16, "seed": 0, "clutter": 0},
    "train": {"epochs": 1, "batch_size": 16, "lr": 0.005},
    "seeds": [0, 1, 2, 3, 4],
    "arms": {"ResNet, n=16": {"n_train": 16, "train": {"epochs": 3}},
             "ViT, n=48": {"model": "vit", "patch": 8, "dim": 16, "depth": 1, "heads": 2,
                           "mlp_dim": 32, "n_train": 48, "train": {"lr": 0.001}}},
}
```
""")
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    monkeypatch.setattr(reference, "CACHE", tmp_path / "cache")
    seen = []
    real = arms.train_arm

    def spy(spec, train, test, **kw):
        seen.append((spec.get("model", "resnet"), len(train), len(test), kw["epochs"], kw["lr"]))
        return real(spec, train, test, **{**kw, "progress": False})

    monkeypatch.setattr(reference.factory, "train_arm", spy)
    path = reference.run("98", out_dir=tmp_path / "out")
    data = json.loads(path.read_text())
    assert sorted(set(seen)) == [("resnet", 16, 16, 3, 0.005), ("vit", 48, 16, 1, 0.001)]
    assert len(seen) == 10
    assert all(len(r["test_acc"]) == 3 for r in data["arms"]["ResNet, n=16"])
    assert all(len(r["test_acc"]) == 1 for r in data["arms"]["ViT, n=48"])
    al.results.validate(data)
    md.write_text(md.read_text().replace('"n_train": 48, "train"', '"n_train": 64, "train"'))
    with pytest.raises(ValueError, match=r"n_train \(64\) exceeds"):   # refused before any training
        reference.run("98", out_dir=tmp_path / "out2")
