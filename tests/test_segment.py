"""DigitFCN and DANet's dual-attention head: shapes, the four heads differ only by attention,
identity at initialisation, gradients, bad arguments."""
import pytest
import torch

import attn_lesson as al
from attn_lesson.segment import DigitFCN, DualAttentionHead

from conftest import randomize_bn


@pytest.mark.parametrize("head", ["none", "pam", "cam", "danet"])
def test_output_is_per_pixel_logits_at_input_size_with_output_stride_4(head):
    torch.manual_seed(0)
    m = DigitFCN(head=head)
    x = torch.rand(2, 1, 40, 40)
    assert m(x).shape == (2, 11, 40, 40)
    feats = m.features(x)
    assert feats["stage2"].shape == (2, 32, 10, 10) and feats["head"].shape == (2, 32, 10, 10)
    assert (m.pam is not None) == (head in ("pam", "danet"))
    assert (m.cam is not None) == (head in ("cam", "danet"))
    assert len(m.attention_modules()) == {"none": 0, "pam": 1, "cam": 1, "danet": 2}[head]
    deep = DigitFCN(widths=(8, 16, 32), depths=(1, 1, 1), stem_stride=1, num_classes=5, head=head)
    assert deep(torch.rand(1, 1, 40, 48)).shape == (1, 5, 40, 48)
    assert deep.features(torch.rand(1, 1, 40, 40))["stage3"].shape == (1, 32, 10, 10)


def test_heads_differ_only_by_their_attention_modules_and_start_equal():
    torch.manual_seed(0)
    models = {h: DigitFCN(head=h) for h in ("none", "pam", "cam", "danet")}
    base = randomize_bn(models["none"]).eval()
    x = torch.rand(3, 1, 40, 40)
    ref = base(x)
    n_base = al.count_params(base)
    for h, m in models.items():
        missing, unexpected = m.load_state_dict(base.state_dict(), strict=False)
        assert not unexpected and all(k.startswith(("head.pam.", "head.cam.")) for k in missing)
        extra = sum(al.count_params(a) for a in m.attention_modules())
        assert al.count_params(m) == n_base + extra
        torch.testing.assert_close(m.eval()(x), ref)               # gamma = beta = 0: identity
    for h in ("pam", "danet"):
        assert models[h].pam.last_attention.shape == (3, 100, 100)  # N = 10 x 10 positions
    assert models["cam"].cam.last_attention.shape == (3, 32, 32)


def test_head_is_the_sum_of_two_branches():
    torch.manual_seed(0)
    head = randomize_bn(DualAttentionHead(16, 8, cam_mode="official")).eval()
    with torch.no_grad():
        head.pam.gamma.fill_(0.7)
        head.cam.beta.fill_(-0.3)
    x = torch.randn(2, 16, 5, 5)
    want = head.post_p(head.pam(head.reduce_p(x))) + head.post_c(head.cam(head.reduce_c(x)))
    torch.testing.assert_close(head(x), want)
    assert head.cam.mode == "official" and head(x).shape == (2, 8, 5, 5)


def test_gradients_reach_gamma_and_beta_and_the_encoder():
    torch.manual_seed(0)
    m = DigitFCN(head="danet")
    y = torch.randint(0, 11, (2, 40, 40))
    torch.nn.functional.cross_entropy(m(torch.rand(2, 1, 40, 40)), y).backward()
    assert m.pam.gamma.grad.abs().item() > 0 and m.cam.beta.grad.abs().item() > 0
    assert m.encoder.stem[0].weight.grad.abs().sum() > 0
    assert not hasattr(m.encoder, "head") and not hasattr(m.encoder, "pool")


def test_receptive_field_of_the_encoder():
    m = DigitFCN()
    assert al.receptive_field(m, (1, 40, 40), "stage2") == (23, 23)
    assert al.receptive_field(m, (1, 40, 40), "head") == (39, 39)     # the head's two 3x3 convs


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(head="both"), "head must be one of"),
    (dict(cam_mode="max"), "cam_mode must be one of"),
    (dict(num_classes=1), "num_classes must be an int >= 2"),
    (dict(head_channels=0), "head_channels must be a positive int"),
    (dict(head="pam", head_channels=12), r"head_channels \(12\) must be divisible by pam_reduction \(8\)"),
    (dict(widths=(16, 32, 64), depths=(1, 1)), "widths and depths must be non-empty and of equal length"),
    (dict(widths=(16, 32), depths=(1,)), "widths and depths must be non-empty and of equal length"),
    (dict(stem_stride=3), "stem_stride must be 1 or 2"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DigitFCN(**kwargs)


def test_logits_are_upsampled_with_cells_anchored_at_their_stride():
    torch.manual_seed(0)
    m = DigitFCN(head="danet").eval()
    x = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        coarse = m.classifier(m.features(x)["head"])                     # (2, 11, 10, 10)
        out = m(x)
    want = al.maps.upsample(coarse.flatten(0, 1), (40, 40), anchor="stride").view(2, 11, 40, 40)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(out[:, :, ::4, ::4], coarse)             # cell i sits on pixel 4 i


def test_dilated_head_fcn_widens_the_receptive_field_without_attention():
    import attn_lesson as al
    plain = al.DigitFCN(stem_stride=1)
    dil = al.DilatedHeadFCN(stem_stride=1, head_dilation=4)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in dil.parameters())
    assert al.receptive_field(plain, (1, 40, 40), "head") == (21, 21)
    assert al.receptive_field(dil, (1, 64, 64), "head")[0] == 45
    assert dil(torch.rand(2, 1, 40, 40)).shape == (2, 11, 40, 40)
    assert dil.attention_modules() == [] and "head_dilation=4" in repr(dil)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="head_dilation"):
            al.DilatedHeadFCN(head_dilation=bad)
    with pytest.raises(ValueError, match="head must be 'none'"):
        al.DilatedHeadFCN(head="pam")
    assert isinstance(al.arms.build_model({"model": "fcn", "head_dilation": 2}), al.DilatedHeadFCN)
