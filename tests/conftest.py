"""Shared test set-up: make ``attn_lesson`` importable and keep matplotlib off-screen."""
import importlib.util
import sys
from pathlib import Path

import matplotlib

# Off-screen plots in this process only (no MPLBACKEND in the environment), so the notebook
# kernels that nbval starts later keep the inline backend and record their figures.
matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("attn_lesson") is None:
    sys.path.insert(0, str(ROOT))


def randomize_bn(module):
    """Non-trivial BN statistics and affine parameters, so that eval-mode BN is not ~identity."""
    import torch
    import torch.nn as nn

    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_()
    return module
