"""Device choice, run profiles, seeding and a one-line environment report.

A *profile* fixes how big the experiments in a chapter are. ``cpu`` keeps every
notebook within about 120 s on the developers' 2-core machine (up to about 1.9x that on slower ones); ``gpu`` uses more data and epochs.
The profile is ``gpu`` when CUDA is available and ``cpu`` otherwise; set the
environment variable ``ATTN_LESSON_PROFILE`` to ``cpu`` or ``gpu`` to force one.
"""
from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass

import numpy as np
import torch

PROFILE_ENV = "ATTN_LESSON_PROFILE"
PROFILES = ("cpu", "gpu")


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``cuda`` when available (or when ``prefer`` names it), else ``cpu``."""
    if prefer is not None:
        if prefer not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {prefer!r}")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but CUDA is not available here")
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Profile:
    """The experiment-size profile a notebook runs under.

    ``profile.pick(cpu=..., gpu=...)`` returns the value for the active profile, so
    that each notebook can state its sizes for both profiles in one cell.
    """

    name: str

    def pick(self, *, cpu, gpu):
        return cpu if self.name == "cpu" else gpu

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.name


def get_profile(name: str | None = None) -> Profile:
    """Return the active profile.

    Order of precedence: the ``name`` argument, then ``$ATTN_LESSON_PROFILE``, then
    ``gpu`` if CUDA is available, else ``cpu``.
    """
    source = "argument"
    if name is None:
        name = os.environ.get(PROFILE_ENV) or None
        source = f"${PROFILE_ENV}"
    if name is None:
        return Profile("gpu" if torch.cuda.is_available() else "cpu")
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r} (from {source}); allowed profiles are "
            f"{', '.join(repr(p) for p in PROFILES)}"
        )
    return Profile(key)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and ask PyTorch for deterministic kernels.

    On the CPU, two runs with the same seed (and the same number of threads) give
    bit-identical results. On CUDA some kernels stay non-deterministic; the runs are
    then only statistically alike. Returns a ``torch.Generator`` seeded with ``seed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def env_report(profile: Profile | None = None) -> str:
    """One line describing Python, PyTorch, device, threads and profile."""
    profile = profile or get_profile()
    dev = get_device()
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(0)
        dev_txt = f"cuda ({name})"
    else:
        dev_txt = f"cpu ({torch.get_num_threads()} threads)"
    return (
        f"python {platform.python_version()} | torch {torch.__version__} | "
        f"device {dev_txt} | profile {profile.name}"
    )
