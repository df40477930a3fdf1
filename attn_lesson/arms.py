"""Reference arms: build and train one arm of a chapter's REFERENCE from its plain-data
description.

A chapter's ``REFERENCE`` (see :mod:`attn_lesson.results`) names its data, its training settings,
its seeds and its arms; each arm is a plain dict (JSON-able, so it can be stored and compared).
This file turns those dicts into objects: :func:`make_data` the two datasets, :func:`arm_data`
the part of the training set one arm trains on, :func:`build_model` a fresh model,
:func:`fit_kwargs` / :func:`arm_fit_kwargs` the arguments of :func:`~attn_lesson.train.fit`, and
:func:`train_arm` one seeded run, exactly as ``make reference`` (``scripts/reference.py``) runs it.

Two arm keys serve a data-scaling curve (chapter 16): ``"n_train": n`` trains the arm on the
first ``n`` images of the reference's training set (the subsets of different sizes are nested),
and the arm's ``"train"`` block may set its own ``epochs`` (so that every size sees a comparable
number of images), besides ``lr`` and ``weight_decay``.
"""
from __future__ import annotations

import json

import torch

CHANNEL_FACTORIES = ("se", "eca", "sk")
SPATIAL_FACTORIES = ("cbam", "bam", "spatial_gate", "channel_gate")
SELFATTN_FACTORIES = ("sagan", "pam", "nonlocal_block", "cam", "uniform_nonlocal", "criss_cross",
                      "global_context")
ATTENTION_FACTORIES = CHANNEL_FACTORIES + SPATIAL_FACTORIES + SELFATTN_FACTORIES
TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "augment", "metric", "num_classes",
              "iou_classes")


def _factory(desc, where: str):
    if desc is None:
        return None
    if not isinstance(desc, dict) or desc.get("name") not in ATTENTION_FACTORIES:
        raise ValueError(f"{where} must be None or {{'name': one of {ATTENTION_FACTORIES}, ...kwargs}}, "
                         f"got {desc!r}")
    from . import channel, selfattn, spatial

    kwargs = {k: v for k, v in desc.items() if k != "name"}
    module = (channel if desc["name"] in CHANNEL_FACTORIES
              else selfattn if desc["name"] in SELFATTN_FACTORIES
              else spatial)
    return getattr(module, desc["name"])(**kwargs)


def build_model(spec: dict):
    """A fresh model from a plain-data arm description, as written in a chapter's REFERENCE:

    ``{"model": "resnet", "attention": {"name": "se", "reduction": 4}, "position": "standard",
    "stage_attention": None, "backbone": {...ResNetBackbone kwargs}}`` (every key optional), or
    ``{"model": "ltpa" | "ran" | "stn", ...keyword arguments of LTPANet, ResidualAttentionNet
    or STNet}``, or ``{"model": "fcn", ...keyword arguments of DigitFCN}`` (segmentation, e.g.
    ``{"model": "fcn", "head": "danet"}``), or ``{"model": "vit", ...keyword arguments of
    attn_lesson.vit.ViT}`` (e.g. ``{"model": "vit", "patch": 8, "dim": 64, "stem": "conv"}``),
    or ``{"model": "ram", ...keyword arguments of attn_lesson.glimpse.RAM}`` (e.g.
    ``{"model": "ram", "glimpses": 6, "std": 0.1}``; RAM trains with its own objective), or
    ``{"model": "sat", ...keyword arguments of attn_lesson.caption.ShowAttendTell}`` (e.g.
    ``{"model": "sat", "length": 3, "gate": False}``; a sequence reader with its own objective)
    or ``{"model": "position_cnn", ...keyword arguments of attn_lesson.caption.PositionHeadsCNN}``
    (one classifier head per digit position); these two need labels ``(n, T)``, i.e. data with
    ``n_digits = T``; or
    ``{"model": "scale_fcn", ...keyword arguments of attn_lesson.segment.ScaleAttentionFCN}``
    (e.g. ``{"model": "scale_fcn", "scales": [1.0, 0.5], "merge": "attention",
    "extra_supervision": True}``; it trains with its own objective).
    A resnet arm's ``pretrain`` block is used by :func:`train_arm`, not here; an arm's ``train``
    block (:func:`arm_train_overrides`) and ``n_train`` (:func:`arm_data`) are checked here and
    do not change the model.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"an arm must be described by a dict, got {type(spec).__name__}")
    kind = spec.get("model", "resnet")
    if "train" in spec:
        arm_train_overrides(spec)                  # checks the arm's own training settings
        spec = {k: v for k, v in spec.items() if k != "train"}
    if "n_train" in spec:
        _check_arm_n_train(spec["n_train"])        # the arm's training-set size (arm_data)
        spec = {k: v for k, v in spec.items() if k != "n_train"}
    if kind in KEYWORD_MODELS:
        return _build_keyword_model(spec)
    if kind == "fcn":
        from .segment import DigitFCN, DilatedHeadFCN

        kwargs = {k: tuple(v) if k in ("widths", "depths") else v
                  for k, v in spec.items() if k != "model"}
        if "pretrain" in kwargs:
            raise ValueError("pretrain is only for resnet arms, not for an fcn arm")
        return DilatedHeadFCN(**kwargs) if "head_dilation" in kwargs else DigitFCN(**kwargs)
    if kind in ("ltpa", "ran", "stn"):
        from .ltpa import LTPANet
        from .residual import ResidualAttentionNet
        from .stn import STNet

        cls = {"ltpa": LTPANet, "ran": ResidualAttentionNet, "stn": STNet}[kind]
        return cls(**{k: v for k, v in spec.items() if k != "model"})
    if kind != "resnet":
        raise ValueError(f"model must be 'resnet', 'ltpa', 'ran', 'stn', 'fcn', "
                         + ", ".join(repr(k) for k in KEYWORD_MODELS) + f"; got {kind!r}")
    unknown = set(spec) - {"model", "attention", "position", "stage_attention", "backbone", "pretrain"}
    if unknown:
        raise ValueError(f"unknown keys in a resnet arm: {sorted(unknown)}; allowed: model, "
                         "attention, position, stage_attention, backbone, pretrain")
    from .models import ResNetBackbone

    backbone = dict(spec.get("backbone") or {})
    for k in ("widths", "depths"):
        if k in backbone:
            backbone[k] = tuple(backbone[k])
    return ResNetBackbone(attention=_factory(spec.get("attention"), "attention"),
                          position=spec.get("position", "standard"),
                          stage_attention=_factory(spec.get("stage_attention"), "stage_attention"),
                          **backbone)


KEYWORD_MODELS = ("vit", "ram", "sat", "position_cnn", "scale_fcn")


def _build_keyword_model(spec: dict):
    """A :class:`attn_lesson.vit.ViT` (vit arm), :class:`attn_lesson.glimpse.RAM` (ram arm),
    :class:`attn_lesson.caption.ShowAttendTell` (sat arm),
    :class:`attn_lesson.caption.PositionHeadsCNN` (position_cnn arm) or
    :class:`attn_lesson.segment.ScaleAttentionFCN` (scale_fcn arm) from the arm's keyword
    arguments (``image_size``, ``scales``, ``widths`` and ``depths`` may be JSON lists)."""
    import inspect

    from .caption import PositionHeadsCNN, ShowAttendTell
    from .glimpse import RAM
    from .segment import ScaleAttentionFCN
    from .vit import ViT

    kind = spec["model"]
    cls = {"vit": ViT, "ram": RAM, "sat": ShowAttendTell, "position_cnn": PositionHeadsCNN,
           "scale_fcn": ScaleAttentionFCN}[kind]
    kwargs = {k: v for k, v in spec.items() if k != "model"}
    if "pretrain" in kwargs:
        raise ValueError(f"pretrain is only for resnet arms, not for a {kind} arm")
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown keys in a {kind} arm: {unknown}; allowed: model, n_train, train, "
                         + ", ".join(allowed))
    for key in ("image_size", "scales", "widths", "depths"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)


ARM_TRAIN_KEYS = ("lr", "weight_decay", "epochs")


def arm_train_overrides(spec: dict) -> dict:
    """The training settings an arm overrides for itself (``"train": {"lr": 0.001}``; only
    ``lr``, ``weight_decay`` and ``epochs`` may differ between the arms of one comparison).
    They apply to the arm's whole run, its pretraining included (whose length is the pretrain
    block's own ``epochs``)."""
    over = spec.get("train") or {}
    if not isinstance(over, dict) or set(over) - set(ARM_TRAIN_KEYS):
        raise ValueError(f"an arm's train block may only set {ARM_TRAIN_KEYS}, got {over!r}")
    epochs = over.get("epochs", 1)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"an arm's train block must give epochs as a positive int, got {epochs!r}")
    return dict(over)


def _check_arm_n_train(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"an arm's n_train must be a positive int (the number of training images "
                         f"it trains on), got {n!r}")


def arm_data(spec: dict, train):
    """The training set of one arm: ``train`` itself, or, when the arm carries ``"n_train": n``,
    its first ``n`` examples (a :class:`~attn_lesson.data.DigitSet` subset, or the first ``n``
    rows of both tensors of an ``(images, targets)`` pair).

    The subsets are nested: an arm with ``n_train = 750`` trains on the first 750 of the images
    that an arm with ``n_train = 1500`` trains on, all drawn by the REFERENCE's ``data`` block
    (whose ``n_train`` must be at least the largest arm's). The test set is the same for every
    arm. An arm with a ``pretrain`` block pretrains on its subset too."""
    if not isinstance(spec, dict):
        raise ValueError(f"an arm must be described by a dict, got {type(spec).__name__}")
    n = spec.get("n_train")
    if n is None:
        return train
    _check_arm_n_train(n)
    if hasattr(train, "subset"):
        size = len(train)
    elif isinstance(train, (tuple, list)) and len(train) == 2:
        size = len(train[0])
    else:
        raise ValueError("train must be a DigitSet or an (images, targets) pair, got "
                         f"{type(train).__name__}")
    if n > size:
        raise ValueError(f"the arm's n_train ({n}) exceeds the reference's training set ({size} "
                         "images); raise the data block's n_train to at least the largest arm's")
    if hasattr(train, "subset"):
        return train.subset(slice(0, n))
    return tuple(t[:n] for t in train)


def arm_fit_kwargs(train: dict, spec: dict) -> dict:
    """``fit`` keyword arguments of one arm: the REFERENCE's ``train`` block updated by the
    arm's own ``train`` block (:func:`arm_train_overrides`)."""
    return fit_kwargs({**train, **arm_train_overrides(spec)})


def fit_kwargs(train: dict) -> dict:
    """``fit`` keyword arguments from a REFERENCE's ``train`` block (``augment``: ``None`` or
    ``"shift:<pixels>"``; for segmentation ``"metric": "miou"`` with ``num_classes`` and
    optionally ``iou_classes``, a list)."""
    unknown = set(train) - set(TRAIN_KEYS)
    if unknown:
        raise ValueError(f"unknown training keys {sorted(unknown)}; allowed: {TRAIN_KEYS}")
    kw = {k: v for k, v in train.items() if k != "augment"}
    if kw.get("iou_classes") is not None:
        kw["iou_classes"] = list(kw["iou_classes"])
    aug = train.get("augment")
    if aug is not None:
        m = str(aug).split(":")
        if len(m) != 2 or m[0] != "shift" or not m[1].isdigit():
            raise ValueError(f"augment must be None or 'shift:<pixels>', got {aug!r}")
        from .data import random_shift

        kw["augment"] = random_shift(int(m[1]))
    return kw


DATA_TASKS = ("cluttered", "relational", "segmentation")
PRETRAIN_KEYS = ("digit", "epochs")


def make_data(data: dict):
    """``(train, test)`` DigitSets from a REFERENCE's ``data`` block: ``n_train``, ``n_test``,
    ``seed`` (default 0), ``task`` (``"cluttered"``, the default: :func:`cluttered_digits`;
    ``"relational"``: :func:`relational_digits`; ``"segmentation"``: :func:`cluttered_digits`
    with per-pixel targets, returned as ``(images, segmentation)`` pairs) and the generator's
    keyword arguments."""
    from .data import cluttered_digits, relational_digits

    d = dict(data)
    missing = [k for k in ("n_train", "n_test") if k not in d]
    if missing:
        raise ValueError(f"a data block needs n_train and n_test; missing {missing}")
    n_train, n_test, seed = d.pop("n_train"), d.pop("n_test"), d.pop("seed", 0)
    task = d.pop("task", "cluttered")
    if task not in DATA_TASKS:
        raise ValueError(f"data task must be one of {DATA_TASKS}, got {task!r}")
    make = relational_digits if task == "relational" else cluttered_digits
    train, test = make(n_train, "train", seed=seed, **d), make(n_test, "test", seed=seed, **d)
    if task == "segmentation":
        return (train.images, train.segmentation), (test.images, test.segmentation)
    return train, test


_PRETRAINED: dict = {}   # (data, seed, backbone, pretrain, fit settings) -> (train, test, state)


def _pretrained_source(spec: dict, pre, train, test, *, seed: int, label, device, fit_kw):
    """The backbone that a resnet arm's ``pretrain`` block asks for, trained once per
    (data, seed, backbone shape, pretrain block, training settings) and kept in memory, so
    that every arm of a reference file starts from the same digit features for a seed."""
    from .models import ResNetBackbone
    from .runtime import seed_everything
    from .train import fit

    if not isinstance(pre, dict) or set(pre) != set(PRETRAIN_KEYS):
        raise ValueError(f"pretrain must be a dict with exactly the keys {PRETRAIN_KEYS}, "
                         f"got {pre!r}")
    if getattr(train, "digits", None) is None:
        raise ValueError("pretrain needs data with digit classes (data task 'relational')")
    k, epochs = pre["digit"], pre["epochs"]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < train.digits.shape[1]:
        raise ValueError(f"pretrain digit must be an index in 0..{train.digits.shape[1] - 1}, "
                         f"got {k!r}")
    backbone = {key: tuple(v) if key in ("widths", "depths") else v
                for key, v in (spec.get("backbone") or {}).items() if key != "stage_attention_at"}
    key = json.dumps({"seed": seed, "backbone": backbone, "pretrain": pre, "device": str(device),
                      "fit": {n: repr(v) for n, v in fit_kw.items()}}, sort_keys=True)
    hit = _PRETRAINED.get(key)
    if hit is not None and hit[0] is train and hit[1] is test:
        source = ResNetBackbone(**{**backbone, "num_classes": 10})
        source.load_state_dict(hit[2])
        return source
    seed_everything(seed)
    source = ResNetBackbone(**{**backbone, "num_classes": 10})
    fit(source, (train.images, train.digits[:, k]), (test.images, test.digits[:, k]),
        seed=seed, device=device, label=f"{label or 'arm'}: pretraining",
        **{**fit_kw, "epochs": epochs, "progress": False})
    source = source.cpu().to(memory_format=torch.contiguous_format)
    if len(_PRETRAINED) >= 32:     # a few small state dicts; bounded all the same
        _PRETRAINED.clear()
    _PRETRAINED[key] = (train, test, {n: t.detach().clone() for n, t in source.state_dict().items()})
    return source


def train_arm(spec: dict, train, test, *, seed: int, label: str | None = None, device=None,
              **fit_kw):
    """One reference run of an arm: seed everything with ``seed``, build the arm's model, and
    train it with :func:`~attn_lesson.train.fit`.

    A resnet arm may carry ``"pretrain": {"digit": k, "epochs": e}``: before the arm is built,
    a plain backbone of the same shape with a 10-class head, initialised from ``seed``, learns
    for ``e`` epochs to name digit ``k`` of each image (``train.digits[:, k]``, relational data)
    with the same seed and training settings; the arm is then built from ``seed`` and every
    weight but the head is copied into it (:func:`~attn_lesson.train.load_backbone_weights`).
    Arms with the same backbone, pretrain block and seed therefore start from the *same*
    pretrained features (the source is trained once and reused). The returned history is that
    of the main training only."""
    from .runtime import seed_everything
    from .train import fit, load_backbone_weights

    if not isinstance(spec, dict):
        raise ValueError(f"an arm must be described by a dict, got {type(spec).__name__}")
    pre = spec.get("pretrain")
    source = None
    if pre is not None:
        source = _pretrained_source(spec, pre, train, test, seed=seed, label=label,
                                    device=device, fit_kw=fit_kw)
    seed_everything(seed)
    model = build_model(spec)
    if source is not None:
        load_backbone_weights(model, source)
    return fit(model, train, test, seed=seed, label=label, device=device, **fit_kw)
