"""Every public entry point added since chapter 9 answers a bad argument or a wrongly shaped
input with a ValueError that names it (not a torch RuntimeError, a ZeroDivisionError, an
unpacking error, or silence)."""
import pytest
import torch

import attn_lesson as al
from attn_lesson import maps, residual, selfattn, stn

CASES = {
    "DigitFCN pam_reduction=0": (lambda: al.DigitFCN(head="danet", pam_reduction=0), "pam_reduction"),
    "DigitFCN input channels": (lambda: al.DigitFCN()(torch.rand(1, 3, 40, 40)), r"\(B, 1, H, W\)"),
    "DigitFCN input dims": (lambda: al.DigitFCN()(torch.rand(1, 40, 40)), r"\(B, 1, H, W\)"),
    "DualAttentionHead channels": (lambda: al.DualAttentionHead(0, 8), "channels"),
    "DualAttentionHead inter": (lambda: al.DualAttentionHead(8, 12), "divisible by pam_reduction"),
    "DualAttentionHead input": (lambda: al.DualAttentionHead(8, 8)(torch.rand(1, 4, 5, 5)), r"\(B, 8, H, W\)"),
    "DilatedHeadFCN dilation": (lambda: al.DilatedHeadFCN(head_dilation=0), "head_dilation"),
    "SelfAttention2d reduction": (lambda: al.SelfAttention2d(8, reduction=0), "reduction"),
    "SelfAttention2d input": (lambda: al.SelfAttention2d(8)(torch.rand(8, 4, 4)), "shape"),
    "NonLocal2d pairwise": (lambda: al.NonLocal2d(8, "x"), "pairwise"),
    "NonLocal2d input": (lambda: al.NonLocal2d(8)(torch.rand(1, 4, 4, 4)), "shape"),
    "UniformNonLocal2d reduction": (lambda: al.UniformNonLocal2d(8, reduction=3), "divisible"),
    "ChannelAttention2d mode": (lambda: al.ChannelAttention2d(8, "x"), "mode"),
    "ChannelAttention2d input": (lambda: al.ChannelAttention2d(8)(torch.rand(1, 4, 4, 4)), "shape"),
    "CrissCrossAttention2d reduction": (lambda: selfattn.CrissCrossAttention2d(12, reduction=8), "divisible by reduction"),
    "CrissCrossAttention2d channels": (lambda: selfattn.CrissCrossAttention2d(0), "channels must be a positive int"),
    "CrissCrossAttention2d recurrence": (lambda: selfattn.CrissCrossAttention2d(8, recurrence=0), "recurrence"),
    "CrissCrossAttention2d recurrence float": (lambda: selfattn.CrissCrossAttention2d(8, recurrence=2.0), "recurrence"),
    "CrissCrossAttention2d input channels": (lambda: selfattn.CrissCrossAttention2d(8)(torch.rand(1, 4, 5, 5)), r"\(B, 8, H, W\)"),
    "CrissCrossAttention2d input dims": (lambda: selfattn.CrissCrossAttention2d(8)(torch.rand(8, 5, 5)), r"\(B, 8, H, W\)"),
    "criss_cross_mask h": (lambda: selfattn.criss_cross_mask(0, 4), "h must be a positive int"),
    "criss_cross_mask w": (lambda: selfattn.criss_cross_mask(4, 2.5), "w must be a positive int"),
    "GlobalContext2d channels": (lambda: selfattn.GlobalContext2d(-1), "channels must be a positive int"),
    "GlobalContext2d reduction": (lambda: selfattn.GlobalContext2d(16, reduction=0), "reduction must be a positive int"),
    "GlobalContext2d planes": (lambda: selfattn.GlobalContext2d(8, reduction=16), r"P = channels // reduction >= 1"),
    "GlobalContext2d fusion": (lambda: selfattn.GlobalContext2d(16, fusion="mul"), "fusion must be one of"),
    "GlobalContext2d pooling": (lambda: selfattn.GlobalContext2d(16, pooling="max"), "pooling must be one of"),
    "GlobalContext2d input channels": (lambda: selfattn.GlobalContext2d(16)(torch.rand(1, 8, 4, 4)), r"\(B, 16, H, W\)"),
    "GlobalContext2d input dims": (lambda: selfattn.GlobalContext2d(16)(torch.rand(16, 4, 4)), r"\(B, 16, H, W\)"),
    "criss_cross factory": (lambda: selfattn.criss_cross(recurrence=0)(8), "recurrence"),
    "global_context factory": (lambda: selfattn.global_context(fusion="x")(16), "fusion"),
    "SpatialTransformer out_size int": (lambda: al.SpatialTransformer(out_size=5), "out_size"),
    "SpatialTransformer out_size 0": (lambda: al.SpatialTransformer(out_size=(0, 5)), "out_size"),
    "SpatialTransformer hidden": (lambda: al.SpatialTransformer(hidden=(8, 16)), "hidden"),
    "SpatialTransformer input": (lambda: al.SpatialTransformer()(torch.rand(1, 3, 40, 40)), r"\(B, 1, H, W\)"),
    "STNet num_classes": (lambda: al.STNet(num_classes=1), "num_classes"),
    "STNet backbone": (lambda: al.STNet(backbone=3), "backbone"),
    "STNet input": (lambda: al.STNet()(torch.rand(2, 40, 40)), r"\(B, 1, H, W\)"),
    "affine_grid_by_hand theta": (lambda: stn.affine_grid_by_hand(torch.rand(2, 3, 3), (2, 1, 5, 5)), "theta"),
    "sample_bilinear grid": (lambda: stn.sample_bilinear(torch.rand(2, 1, 5, 5), torch.rand(2, 5, 5, 3)), "grid"),
    "ResidualUnit channels": (lambda: residual.ResidualUnit(0), "channels"),
    "ResidualUnit input": (lambda: residual.ResidualUnit(8)(torch.rand(1, 4, 6, 6)), r"\(B, 8, H, W\)"),
    "mask_activation dims": (lambda: residual.mask_activation(torch.rand(2, 3, 3), "channel"), "logits"),
    "mask_activation name": (lambda: residual.mask_activation(torch.rand(1, 2, 3, 3), "x"), "activation"),
    "SoftMaskBranch depth": (lambda: al.SoftMaskBranch(8, depth=0), "depth"),
    "AttentionModule learning": (lambda: al.AttentionModule(8, learning="x"), "learning"),
    "AttentionModule channels": (lambda: al.AttentionModule(0), "channels"),
    "AttentionModule input": (lambda: al.AttentionModule(8)(torch.rand(1, 4, 8, 8)), r"\(B, 8, H, W\)"),
    "ResidualAttentionNet num_classes": (lambda: al.ResidualAttentionNet(num_classes=1), "num_classes"),
    "compare labels": (lambda: al.compare([1, 2, 3], [1, 2, 3], labels="ab"), "labels"),
    "compare nested values": (lambda: al.compare([[1], [2], [3]], [1, 2, 3]), "one number per run"),
    "compare scale": (lambda: al.compare([1, 2, 3], [1, 2, 4], scale=0), "scale"),
    "upsample anchor": (lambda: maps.upsample(torch.rand(2, 4, 4), (8, 8), anchor="x"), "anchor"),
    "upsample image_size": (lambda: maps.upsample(torch.rand(2, 4, 4), (8, 8, 8)), "image_size"),
    "receptive_field stage": (lambda: al.receptive_field(al.ResNetBackbone(), (1, 40, 40), "x"), "stage"),
    "receptive_field model": (lambda: al.receptive_field(torch.nn.Conv2d(1, 1, 3), (1, 8, 8), "x"), "features"),
    "make_data task": (lambda: al.results.make_data({"n_train": 2, "n_test": 2, "task": "x"}), "task"),
    "arm train block": (lambda: al.results.build_model({"train": {"epochs": 2}}), "may only set"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_raises_a_clear_value_error(name):
    fn, match = CASES[name]
    with pytest.raises(ValueError, match=match):
        fn()
