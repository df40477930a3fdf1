"""attn_lesson: the small helper package shared by every chapter of "Attention in Vision".

Modules: ``runtime`` (device, profile, seeding), ``data`` (Cluttered Digits, batches,
CIFAR-10), ``models`` (residual backbone with an attention slot), ``train`` (fit,
evaluate, seeds), ``cost`` (parameters, FLOPs, latency), ``viz`` (plots), ``channel``
(channel attention: SE, ECA, SK), ``spatial`` (spatial and mixed attention: spatial gate,
CBAM, BAM), ``maps`` (Grad-CAM, localisation scores), ``ltpa`` (Learn to Pay Attention),
``residual`` (Residual Attention Network), ``stn`` (Spatial Transformer), ``selfattn``
(SAGAN layer, non-local block, DANet's PAM and CAM), ``segment`` (a small FCN with DANet's
dual-attention head, for per-pixel classes; attention to scale), ``stats``
(``compare``: the one routine behind every "A vs B"), ``results`` (reference result files),
``ledger`` (the paper claims the chapters test, recomputed from the reference files),
``arms`` (build and train one arm of a chapter's reference runs),
``vit`` (Vision Transformer: patch embedding, multi-head self-attention, encoder blocks; the
rollout of its attention is in ``maps``), ``glimpse`` (RAM: hard attention by REINFORCE),
``caption`` (Show, Attend and Tell: an attention LSTM that reads a digit sequence), ``sanity``
(sanity checks of maps by model-parameter randomisation, Adebayo et al.; its map functions
use Captum), ``ddp``
(data-parallel training of a small course model, the script ``torchrun`` launches in the
appendix: ``python -m attn_lesson.ddp``; import it as ``from attn_lesson import ddp``, the
package does not load it).
"""
from . import (arms, caption, ledger, residual, results, sanity, segment, selfattn, stn, vit,
               viz)
from .channel import ECAModule, SEModule, SKAttention, SKConv, eca, eca_kernel_size, se, sk
from .ltpa import LTPANet, LTPAttention
from .residual import AttentionModule, ResidualAttentionNet, SoftMaskBranch
from .stn import SpatialTransformer, STNet
from .selfattn import ChannelAttention2d, NonLocal2d, SelfAttention2d, UniformNonLocal2d
from .segment import DigitFCN, DilatedHeadFCN, DualAttentionHead, ScaleAttentionFCN
from .maps import (GradCAM, attention_rollout, box_area_fraction, box_energy, cls_rollout_map,
                   localisation_scores, pointing_game, receptive_field)
from .vit import EncoderBlock, MultiHeadSelfAttention, PatchEmbed, ViT, conv_stem, mhsa_flops
from .spatial import (BAM, CBAM, ChannelGate, SpatialGate, bam, cbam, channel_gate,
                      spatial_gate)
from .cost import CostTable, count_flops, count_params, cost_table, measure_latency
from .data import (BatchIterator, DataUnavailableError, DigitSet, cluttered_digits, glyph_pools,
                   load_cifar10, random_crop_flip, random_shift, relational_digits)
from .models import BasicBlock, ResNetBackbone, conv_bn_relu
from .runtime import Profile, env_report, get_device, get_profile, seed_everything
from .stats import Comparison, compare
from .train import (History, SeedRuns, confusion_matrix, evaluate, fit, iou_per_class,
                    load_backbone_weights, mean_iou, mean_std, run_seeds)

__version__ = "0.1.0"

__all__ = [
    "AttentionModule", "ResidualAttentionNet", "SoftMaskBranch", "SpatialTransformer", "STNet",
    "ChannelAttention2d", "NonLocal2d", "SelfAttention2d", "UniformNonLocal2d", "selfattn",
    "DigitFCN", "DilatedHeadFCN", "DualAttentionHead", "ScaleAttentionFCN", "segment", "confusion_matrix", "iou_per_class", "mean_iou",
    "BAM", "CBAM", "ChannelGate", "GradCAM", "LTPANet", "LTPAttention", "SpatialGate", "bam",
    "box_area_fraction", "box_energy", "cbam", "channel_gate", "localisation_scores",
    "pointing_game", "receptive_field", "spatial_gate",
    "EncoderBlock", "MultiHeadSelfAttention", "PatchEmbed", "ViT", "attention_rollout",
    "cls_rollout_map", "conv_stem", "mhsa_flops", "vit",
    "Comparison", "compare", "results", "ledger", "arms", "caption", "sanity",
    "BatchIterator", "BasicBlock", "CostTable", "DataUnavailableError", "DigitSet", "ECAModule",
    "History", "Profile", "ResNetBackbone", "SEModule", "SKAttention", "SKConv", "SeedRuns",
    "cluttered_digits", "conv_bn_relu", "cost_table", "count_flops", "count_params", "eca",
    "eca_kernel_size", "env_report", "evaluate", "fit", "get_device", "get_profile",
    "glyph_pools", "load_backbone_weights", "load_cifar10", "mean_std", "measure_latency",
    "random_crop_flip",
    "random_shift", "relational_digits", "run_seeds", "se", "seed_everything", "sk", "viz",
]
