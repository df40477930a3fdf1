"""Shared test set-up: make ``attn_lesson`` importable and keep matplotlib off-screen."""
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("attn_lesson") is None:
    sys.path.insert(0, str(ROOT))
