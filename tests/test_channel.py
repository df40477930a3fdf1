"""Channel attention (SE, ECA, SK): shapes, gradients, step-by-step equality, bad arguments,
equivalence with timm (weights copied), and the backbone's attention slot."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import randomize_bn

from attn_lesson import (ECAModule, ResNetBackbone, SEModule, SKAttention, SKConv, eca,
                         eca_kernel_size, se, sk)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)




# ---------------------------------------------------------------- shapes and weights
@pytest.mark.parametrize("squeeze", ["avg", "max", "none"])
@pytest.mark.parametrize("gate", ["sigmoid", "relu", "tanh"])
def test_se_shapes_and_output_is_x_times_weights(squeeze, gate):
    m = SEModule(8, 4, squeeze=squeeze, gate=gate)
    x = torch.randn(3, 8, 5, 6)
    y = m(x)
    assert y.shape == x.shape
    w = m.last_weights
    assert not w.requires_grad
    if squeeze == "none":
        assert w.shape == (3, 8, 5, 6)
        assert torch.equal(y, x * w)
    else:
        assert w.shape == (3, 8)
        assert torch.equal(y, x * w[:, :, None, None])
    lo, hi = {"sigmoid": (0, 1), "relu": (0, math.inf), "tanh": (-1, 1)}[gate]
    assert w.min() >= lo and w.max() <= hi


@pytest.mark.parametrize("channels, reduction, min_hidden, hidden",
                         [(64, 16, 1, 4), (16, 16, 1, 1), (32, 4, 1, 8), (16, 16, 4, 4), (20, 3, 1, 6)])
def test_se_hidden_width(channels, reduction, min_hidden, hidden):
    m = SEModule(channels, reduction, min_hidden=min_hidden)
    assert m.hidden == hidden
    assert m.fc1.weight.shape == (hidden, channels, 1, 1)
    assert m.fc2.weight.shape == (channels, hidden, 1, 1)
    assert m.fc1.bias is not None and m.fc2.bias is not None
    # 2 C C/r weights + C/r + C biases
    assert sum(p.numel() for p in m.parameters()) == 2 * channels * hidden + hidden + channels


def test_se_step_by_step_matches_module():
    """Squeeze -> W1 -> ReLU -> W2 -> sigmoid -> scale, written out with the module's weights."""
    m = SEModule(12, 4).double()
    x = torch.randn(2, 12, 7, 5, dtype=torch.float64)
    W1, b1 = m.fc1.weight[:, :, 0, 0], m.fc1.bias          # (C/r, C), (C/r,)
    W2, b2 = m.fc2.weight[:, :, 0, 0], m.fc2.bias          # (C, C/r), (C,)
    z = x.sum((2, 3)) / (7 * 5)                             # GAP: (B, C)
    s = torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)
    expected = x * s[:, :, None, None]
    torch.testing.assert_close(m(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.last_weights, s, rtol=1e-12, atol=1e-12)


def test_se_max_squeeze_and_tanh_gate_step_by_step():
    m = SEModule(8, 2, squeeze="max", gate="tanh").double()
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    z = x.flatten(2).max(-1).values
    h = torch.relu(F.linear(z, m.fc1.weight[:, :, 0, 0], m.fc1.bias))
    s = torch.tanh(F.linear(h, m.fc2.weight[:, :, 0, 0], m.fc2.bias))
    torch.testing.assert_close(m(x), x * s[:, :, None, None], rtol=1e-12, atol=1e-12)


def test_se_no_squeeze_acts_per_position():
    """squeeze='none': the excitation at a position depends only on that position."""
    m = SEModule(8, 2, squeeze="none")
    with torch.no_grad():
        m.fc1.bias.fill_(2.0)                               # keep the hidden ReLUs active
    x = torch.randn(1, 8, 5, 5)
    y0 = m(x)
    x2 = x.clone()
    x2[0, :, 2, 3] += 5.0
    diff = (m(x2) - y0).abs().sum(1)[0]                     # (H, W)
    assert diff[2, 3] > 0
    diff[2, 3] = 0
    assert diff.max() == 0
    # the avg-squeeze module with the same weights does spread the change everywhere
    m_avg = SEModule(8, 2)
    m_avg.load_state_dict(m.state_dict())
    d_avg = (m_avg(x2) - m_avg(x)).abs().sum(1)[0]
    assert (d_avg > 0).float().mean() > 0.9


def test_eca_kernel_size_table():
    table = {1: 1, 4: 1, 8: 3, 16: 3, 32: 3, 64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    assert {c: eca_kernel_size(c) for c in table} == table
    for c in (3, 17, 100, 300, 5000):                       # odd always
        assert eca_kernel_size(c) % 2 == 1
    assert eca_kernel_size(64, gamma=1, b=1) == 7           # t = int(7) -> 7
    assert ECAModule(256).k_size == 5 and ECAModule(2048).conv.weight.shape == (1, 1, 7)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_eca_shapes_and_step_by_step(k):
    C = 10
    m = ECAModule(C, k).double()
    assert m.conv.bias is None and m.conv.weight.numel() == k
    x = torch.randn(2, C, 4, 3, dtype=torch.float64)
    w = m.conv.weight.view(k)
    z = x.mean((2, 3))                                      # (B, C)
    zp = F.pad(z, (k // 2, k // 2))                         # zero padding at both channel ends
    s = torch.sigmoid(torch.stack([(zp[:, c:c + k] * w).sum(1) for c in range(C)], 1))
    y = m(x)
    assert y.shape == x.shape and m.last_weights.shape == (2, C)
    torch.testing.assert_close(y, x * s[:, :, None, None], rtol=1e-12, atol=1e-12)
    assert torch.equal(y, x * m.last_weights[:, :, None, None])


def test_eca_is_local_across_channels():
    """With k=3, channel 0's weight ignores channels >= 2."""
    m = ECAModule(8, 3)
    x = torch.randn(1, 8, 3, 3)
    m(x)
    w0 = m.last_weights[0, 0].clone()
    x2 = x.clone()
    x2[:, 2:] += 3.0
    m(x2)
    assert m.last_weights[0, 0] == w0
    assert not torch.equal(m.last_weights[0, 1:], w0.expand(7))


@pytest.mark.parametrize("branches", [2, 3])
def test_sk_shapes_and_softmax(branches):
    m = SKConv(16, branches=branches, reduction=4, L=8)
    assert m.d == 8
    for i, path in enumerate(m.paths):
        conv = path[0]
        assert conv.kernel_size == (3, 3) and conv.dilation == (i + 1, i + 1)
        assert conv.padding == (i + 1, i + 1) and conv.bias is None
    x = torch.randn(2, 16, 6, 6)
    y = m(x)
    assert y.shape == x.shape
    a = m.last_weights
    assert a.shape == (2, branches, 16)
    torch.testing.assert_close(a.sum(1), torch.ones(2, 16))
    assert SKConv(16).d == 32 and SKConv(1024, reduction=16).d == 64   # d = max(C // r, L)
    assert SKConv(16, stride=2)(x).shape == (2, 16, 3, 3)


def test_sk_step_by_step_matches_module():
    """Split, fuse (sum, GAP, FC, BN, ReLU), select (softmax over branches), written out."""
    m = randomize_bn(SKConv(6, reduction=2, L=4)).double().eval()
    x = torch.randn(3, 6, 5, 5, dtype=torch.float64)
    U = [path(x) for path in m.paths]                        # each (B, C, H, W)
    g = (U[0] + U[1]).mean((2, 3))                           # (B, C)
    att = m.attention
    h = g @ att.fc_reduce.weight[:, :, 0, 0].T               # (B, d), no bias
    bn = att.bn
    h = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    z = torch.relu(h)
    A = att.fc_select.weight[:, :, 0, 0]                     # (M*C, d): rows i*C.. = branch i
    logits = torch.stack([z @ A[:6].T, z @ A[6:].T], 1)      # (B, M, C)
    a = torch.softmax(logits, 1)
    V = a[:, 0, :, None, None] * U[0] + a[:, 1, :, None, None] * U[1]
    torch.testing.assert_close(m(x), V, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.last_weights, a, rtol=1e-12, atol=1e-12)


def test_sk_attention_rejects_wrong_branch_count():
    att = SKAttention(8, 2, 4)
    with pytest.raises(ValueError, match=r"\(B, 2, C, H, W\)"):
        att(torch.randn(2, 3, 8, 4, 4))


# ---------------------------------------------------------------- gradients
def active(se_module):
    """Positive hidden biases, so that no hidden ReLU is dead for the whole tiny batch."""
    with torch.no_grad():
        se_module.fc1.bias.fill_(1.0)
    return se_module


@pytest.mark.parametrize("make", [lambda: active(SEModule(8, 2)),
                                  lambda: active(SEModule(8, 2, squeeze="none")),
                                  lambda: active(SEModule(8, 2, squeeze="max", gate="tanh")),
                                  lambda: ECAModule(8, 3), lambda: SKConv(8, reduction=2, L=4)],
                         ids=["se", "se-none", "se-max-tanh", "eca", "sk"])
def test_gradients_reach_every_parameter_and_input(make):
    m = make()
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    (m(x) * torch.randn(2, 8, 5, 5)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs, match", [
    (dict(channels=8, reduction=16), "reduction larger than channels"),
    (dict(channels=8, reduction=0), "reduction"),
    (dict(channels=0), "channels"),
    (dict(channels=8, reduction=2.0), "reduction"),
    (dict(channels=8, reduction=2, squeeze="mean"), r"squeeze must be one of \('avg', 'max', 'none'\)"),
    (dict(channels=8, reduction=2, gate="softmax"), r"gate must be one of \('sigmoid', 'relu', 'tanh'\)"),
    (dict(channels=8, min_hidden=0), "min_hidden"),
])
def test_se_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SEModule(**kwargs)


@pytest.mark.parametrize("k", [0, -3, 2, 4, 3.0, True])
def test_eca_bad_kernel_size(k):
    with pytest.raises(ValueError, match="odd positive"):
        ECAModule(16, k)


def test_eca_kernel_size_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        eca_kernel_size(0)
    with pytest.raises(ValueError, match="gamma"):
        eca_kernel_size(64, gamma=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(branches=1), "branches must be an int >= 2"),
    (dict(branches=0), "branches must be an int >= 2"),
    (dict(reduction=0), "reduction"),
    (dict(L=0), "L must"),
    (dict(stride=0), "stride"),
])
def test_sk_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SKConv(16, **kwargs)
    with pytest.raises(ValueError, match="branches"):
        SKAttention(16, 1, 8)


# ---------------------------------------------------------------- equivalence with timm
timm_layers = pytest.importorskip("timm.layers", reason="timm is needed for the equivalence tests")
timm_sk = pytest.importorskip("timm.layers.selective_kernel")   # SelectiveKernelAttn lives here


@pytest.mark.parametrize("channels, reduction", [(64, 16), (32, 4), (24, 8)])
def test_se_equals_timm(channels, reduction):
    ours = SEModule(channels, reduction)
    # rd_channels avoids timm's rounding of the hidden width to a multiple of 8 (rd_divisor)
    ref = timm_layers.SEModule(channels, rd_channels=channels // reduction, add_maxpool=False,
                               bias=True)
    ours.load_state_dict(ref.state_dict())                  # same names: fc1, fc2
    x = torch.randn(2, channels, 5, 5)
    torch.testing.assert_close(ours(x), ref(x))


def test_timm_se_rounds_hidden_width():
    """Why rd_channels is passed above: by default timm rounds C/16 up to a multiple of 8."""
    assert timm_layers.SEModule(64).fc1.out_channels == 8
    assert SEModule(64).hidden == 4


@pytest.mark.parametrize("k", [3, 5])
def test_eca_equals_timm(k):
    ours = ECAModule(32, k)
    ref = timm_layers.EcaModule(channels=None, kernel_size=k)  # channels=None: use k as given
    ours.load_state_dict(ref.state_dict())                     # same name: conv
    x = torch.randn(2, 32, 4, 4)
    torch.testing.assert_close(ours(x), ref(x))


def test_timm_eca_raises_small_kernels_to_3():
    """timm enforces k >= 3 for the adaptive size; the formula (and ECAModule) gives k=1 for C<8."""
    assert timm_layers.EcaModule(channels=4).conv.kernel_size == (3,)
    assert ECAModule(4).k_size == 1
    # for C >= 8 the adaptive sizes agree
    for c in (16, 64, 256, 2048):
        assert timm_layers.EcaModule(channels=c).conv.kernel_size == (ECAModule(c).k_size,)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_sk_attention_equals_timm(train):
    C, M, d = 16, 2, 8
    ours = randomize_bn(SKAttention(C, M, d))
    ref = timm_sk.SelectiveKernelAttn(C, num_paths=M, attn_channels=d)
    ref.load_state_dict(ours.state_dict())                 # fc_reduce, bn, fc_select
    ours.train(train)
    ref.train(train)
    u = torch.randn(4, M, C, 5, 5)
    torch.testing.assert_close(ours(u), ref(u))
    # in training mode both updated their BN running statistics the same way
    torch.testing.assert_close(ours.bn.running_mean, ref.bn.running_mean)


def test_sk_conv_equals_timm_selective_kernel():
    """The whole unit against timm's SelectiveKernel with the same plain (unsplit) branches."""
    C = 16
    ours = randomize_bn(SKConv(C, reduction=4, L=8)).eval()
    ref = timm_layers.SelectiveKernel(C, C, kernel_size=[3, 5], keep_3x3=True, split_input=False,
                                      rd_channels=ours.d).eval()
    state = {}
    for i in range(2):
        for ours_key, ref_key in (("0", "conv"), ("1", "bn")):
            for k, v in ours.paths[i][int(ours_key)].state_dict().items():
                state[f"paths.{i}.{ref_key}.{k}"] = v
    state.update({f"attn.{k}": v for k, v in ours.attention.state_dict().items()})
    ref.load_state_dict(state)
    assert [p.conv.dilation for p in ref.paths] == [(1, 1), (2, 2)]
    x = torch.randn(2, C, 6, 6)
    torch.testing.assert_close(ours(x), ref(x))


# ---------------------------------------------------------------- the backbone's slot
@pytest.mark.parametrize("factory, cls", [(se(4), SEModule), (eca(), ECAModule),
                                          (sk(reduction=4, L=8), SKConv)],
                         ids=["se", "eca", "sk"])
def test_backbone_with_channel_attention(factory, cls):
    model = ResNetBackbone(attention=factory)
    mods = model.attention_modules()
    assert len(mods) == 3 and all(isinstance(m, cls) for m in mods)
    assert [m.channels for m in mods] == [16, 32, 64]
    out = model(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 10)
    assert all(m.last_weights is not None and m.last_weights.shape[0] == 2 for m in mods)


@pytest.mark.parametrize("position", ["pre", "post", "identity"])
def test_backbone_se_positions(position):
    model = ResNetBackbone(attention=se(4, gate="tanh"), position=position)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    assert len(model.attention_modules()) == 3


def test_factories_pass_arguments():
    m = se(8, squeeze="max", gate="relu")(32)
    assert (m.hidden, m.squeeze, m.gate_name) == (4, "max", "relu")
    assert eca(5)(64).k_size == 5 and eca()(256).k_size == 5
    assert sk(branches=3, L=4)(8).branches == 3
