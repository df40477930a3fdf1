"""Data-parallel training of a course model, launched by ``torchrun`` (the appendix, chapter 21).

    torchrun --standalone --nproc-per-node=2 -m attn_lesson.ddp --model vit --out DIR
    python -m attn_lesson.ddp --model vit --out DIR               # one process, the same batch B
    python -m attn_lesson.ddp --model resnet --ghost 2 --out DIR  # one process, each batch in 2 halves

``torchrun`` is ``python -m torch.distributed.run``: it starts ``--nproc-per-node`` copies of this
module and gives each one ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in its environment. Started without them (plain ``python -m``), the module trains
in one process. Every process

1. joins the process group (backend ``gloo`` on the CPU, ``nccl`` on GPUs, one GPU per process),
2. builds the same model from the same seed and wraps it in ``DistributedDataParallel`` (DDP),
   which broadcasts rank 0's parameters and buffers, so all replicas start equal anyway,
3. reads its share of every epoch through a ``DistributedSampler``: one permutation of the
   ``N`` training images per epoch (seeded with ``seed + epoch``, hence ``set_epoch``), of which
   rank ``r`` takes positions ``r, r + W, r + 2W, ...``, in batches of ``b = B / W``,
4. computes the mean loss over its ``b`` images; during ``backward`` DDP all-reduces the
   gradients and divides by ``W``, so every rank holds ``(g_0 + ... + g_{W-1}) / W``, which for
   equal shards is the gradient of the mean loss over all ``B`` images, and takes the same SGD step.

One process with ``--ghost k`` reads the same batches of ``B`` images, splits each into the ``k``
interleaved parts the ranks would get (``x[j::k]``), averages the ``k`` mean losses and lets the
running batch-norm statistics follow part 0 only: what ``k`` DDP processes compute for a model
with batch norm, whose statistics are per process (SyncBatchNorm needs GPUs).

Rank 0 writes ``weights.pt`` (the trained ``state_dict``) and ``log.json`` (settings, losses, the
first indices of each epoch, seconds and images per second per epoch, test accuracy) to ``--out``.
``--inspect`` instead checks, on one batch, what DDP does, and writes ``inspect_rank<r>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from .data import cluttered_digits
from .models import ResNetBackbone
from .runtime import seed_everything
from .vit import ViT

MODELS = ("vit", "resnet")


def build_model(kind: str) -> nn.Module:
    """A small course model on 40x40 Cluttered Digits: ``"vit"`` (layer norm only, no batch
    norm: two encoder blocks, D=32, patches 8x8) or ``"resnet"`` (the chapter-2 backbone with
    widths 8/16/32, batch norm in every block)."""
    if kind not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {kind!r}")
    if kind == "vit":
        return ViT(image_size=40, patch=8, dim=32, depth=2, heads=2, mlp_dim=64)
    return ResNetBackbone(widths=(8, 16, 32))


def split_batch(t: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """The ``parts`` interleaved slices ``t[j::parts]`` of a batch: with a DistributedSampler over
    ``parts`` processes, slice ``j`` of one process's batch of ``B`` is what rank ``j`` reads."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts must be a positive int, got {parts!r}")
    if t.shape[0] % parts:
        raise ValueError(f"a batch of {t.shape[0]} does not split into {parts} equal parts")
    return [t[j::parts] for j in range(parts)]


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def ghost_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, parts: int) -> torch.Tensor:
    """Mean over ``parts`` interleaved slices of each slice's mean cross-entropy, every slice
    through its own forward pass (so batch norm normalises each with its own statistics). The
    running statistics follow slice 0 only, as rank 0's do under DDP: for the other slices the
    batch norms run with momentum 0 (``r <- 1 * r + 0 * stat``, exactly ``r``)."""
    xs, ys = split_batch(x, parts), split_batch(y, parts)
    losses = [F.cross_entropy(model(xs[0]), ys[0])]
    bns = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        losses += [F.cross_entropy(model(xj), yj) for xj, yj in zip(xs[1:], ys[1:])]
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
    return torch.stack(losses).mean()


def _setup(threads: int) -> tuple[int, int, torch.device]:
    """Join the process group when torchrun started us; ``(rank, world_size, device)``."""
    torch.set_num_threads(threads)
    if "RANK" not in os.environ:                      # plain python: one process, no group
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise SystemExit(f"process {local} of this machine has no GPU of its own "
                             f"({torch.cuda.device_count()} visible): start at most that many "
                             f"processes per machine, or hide the GPUs (CUDA_VISIBLE_DEVICES=) for CPU processes")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _data(args, device):
    train = cluttered_digits(args.n_train, "train", seed=args.data_seed)
    test = cluttered_digits(args.n_test, "test", seed=args.data_seed)
    return TensorDataset(train.images, train.labels), test


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not dist.is_initialized():
        return model
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def train(args) -> dict:
    rank, world, device = _setup(args.threads)
    if args.batch % (world * args.ghost):
        raise ValueError(f"--batch {args.batch} must be divisible by the number of processes ({world}) "
                         f"times --ghost ({args.ghost})")
    if args.n_train % args.batch:
        raise ValueError(f"--n-train {args.n_train} must be a multiple of --batch {args.batch}, so that "
                         f"every step of every launch sees B distinct images (no padding)")
    ds, test = _data(args, device)
    seed_everything(args.seed)                       # the same initial weights in every process
    model = _wrap(build_model(args.model).to(device), device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(ds, batch_size=args.batch // world, sampler=sampler)
    log = {"model": args.model, "world_size": world, "per_process_batch": args.batch // world,
           "batch": args.batch, "ghost": args.ghost, "threads": torch.get_num_threads(),
           "backend": dist.get_backend() if dist.is_initialized() else None, "device": str(device),
           "n_train": args.n_train, "lr": args.lr, "set_epoch": not args.no_set_epoch,
           "train_loss": [], "first_indices": [], "epoch_s": [], "images_per_s": []}
    for epoch in range(args.epochs):
        if not args.no_set_epoch:
            sampler.set_epoch(epoch)                 # a new permutation every epoch
        log["first_indices"].append(list(sampler)[:8])
        model.train()
        if dist.is_initialized():
            dist.barrier()                           # time every process from the same moment
        t0, loss_sum, steps = time.perf_counter(), torch.zeros((), device=device), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = (ghost_loss(model, x, y, args.ghost) if args.ghost > 1
                    else F.cross_entropy(model(x), y))
            opt.zero_grad(set_to_none=True)
            loss.backward()                          # under DDP: all-reduce, then divide by W
            opt.step()
            loss_sum += loss.detach()               # on the device: nccl reduces no CPU tensor
            steps += 1
        if dist.is_initialized():
            dist.all_reduce(loss_sum)                # sum over processes of their mean losses
            loss_sum /= world
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        sec = time.perf_counter() - t0
        log["train_loss"].append(loss_sum.item() / steps)
        log["epoch_s"].append(sec)
        log["images_per_s"].append(steps * args.batch / sec)
    net = model.module if isinstance(model, DDP) else model
    if rank == 0:
        net.eval()
        with torch.no_grad():
            pred = net(test.images.to(device)).argmax(1).cpu()
        log["test_acc"] = (pred == test.labels).float().mean().item()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, out / "weights.pt")
        (out / "log.json").write_text(json.dumps(log, indent=1))
    if dist.is_initialized():
        dist.destroy_process_group()
    return log


def inspect(args) -> dict:
    """On one batch per rank, measure what DDP does: the parameters after the constructor
    (each rank built its model from its own seed), the gradient of a step without
    synchronisation (``no_sync``) and with it, and the batch-norm buffers before and after the
    next forward. Writes ``inspect_rank<r>.json``."""
    rank, world, device = _setup(args.threads)
    if not dist.is_initialized():
        raise SystemExit("--inspect needs several processes: launch it with torchrun")
    ds, _ = _data(args, device)
    seed_everything(args.seed + rank)                # deliberately different weights per rank
    net = build_model(args.model).to(device)
    first = next(net.parameters())
    rec = {"rank": rank, "world_size": world, "backend": dist.get_backend(),
           "env": {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE",
                                                    "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS")},
           "param0_before_ddp": first.detach().flatten()[:4].tolist()}
    model = _wrap(net, device)
    rec["param0_after_ddp"] = first.detach().flatten()[:4].tolist()
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    x, y = next(iter(DataLoader(ds, batch_size=args.batch // world, sampler=sampler)))
    x, y = x.to(device), y.to(device)
    with model.no_sync():                            # backward without the all-reduce
        F.cross_entropy(model(x), y).backward()
    local = torch.cat([p.grad.flatten() for p in net.parameters()])
    net.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()          # the same batch, now with the all-reduce
    synced = torch.cat([p.grad.flatten() for p in net.parameters()])
    by_hand = local.clone()
    dist.all_reduce(by_hand)                         # sum over ranks ...
    by_hand /= world                                 # ... divided by W
    rec["grad_local_norm"] = local.norm().item()
    rec["grad_synced_norm"] = synced.norm().item()
    rec["synced_minus_mean_of_local"] = (synced - by_hand).abs().max().item()
    times = []                                       # one all-reduce of a gradient-sized tensor
    for _ in range(21):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(by_hand)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    rec["allreduce_ms"] = 1e3 * sorted(times[1:])[len(times[1:]) // 2]   # median, first call left out
    rec["allreduce_floats"] = by_hand.numel()
    bufs = [b for b in net.buffers() if b.dtype.is_floating_point]
    if bufs:                                         # the batch-norm running means
        with torch.no_grad():
            bufs[0].add_(float(rank))                # make the ranks' buffers differ
            rec["buffer0_before_forward"] = bufs[0].flatten()[:3].tolist()
            net.eval()                               # eval: batch norm leaves its buffers alone,
            model(x)                                 # so what changes them is DDP's broadcast
            net.train()
        rec["buffer0_after_forward"] = bufs[0].flatten()[:3].tolist()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"inspect_rank{rank}.json").write_text(json.dumps(rec, indent=1))
    dist.destroy_process_group()
    return rec


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attn_lesson.ddp",
                                 description="Train a small course model, data-parallel under torchrun.")
    ap.add_argument("--model", choices=MODELS, default="vit")
    ap.add_argument("--out", required=True, help="folder for weights.pt and log.json (rank 0)")
    ap.add_argument("--n-train", type=_positive_int, default=1024)
    ap.add_argument("--n-test", type=_positive_int, default=500)
    ap.add_argument("--batch", type=_positive_int, default=64,
                    help="global batch B; each of the W processes reads B / W images per step")
    ap.add_argument("--epochs", type=_positive_int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and sampler order")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--threads", type=_positive_int, default=1, help="torch threads per process")
    ap.add_argument("--ghost", type=_positive_int, default=1,
                    help="split each batch into this many interleaved parts (one process)")
    ap.add_argument("--no-set-epoch", action="store_true",
                    help="forget sampler.set_epoch (the same order every epoch)")
    ap.add_argument("--inspect", action="store_true", help="check what DDP does on one batch")
    args = ap.parse_args(argv)
    if not args.lr > 0:
        ap.error(f"--lr must be positive, got {args.lr}")
    if args.ghost > 1 and "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        ap.error("--ghost imitates several processes inside one; launch it without torchrun")
    (inspect if args.inspect else train)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
