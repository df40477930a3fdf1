"""ResNetBackbone / BasicBlock: shapes, features, the attention slot, argument checks."""
import pytest
import torch
import torch.nn as nn

from attn_lesson import BasicBlock, ResNetBackbone, conv_bn_relu


class Scale(nn.Module):
    """A toy attention module: a learnable per-channel scale (breaks on a wrong channel count)."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        assert x.shape[1] == self.channels, (x.shape, self.channels)
        return x * self.weight


class Zero(nn.Module):
    def __init__(self, channels):
        super().__init__()

    def forward(self, x):
        return x * 0


def recording_factory():
    calls = []

    def factory(channels):
        calls.append(channels)
        return Scale(channels)

    return factory, calls


@pytest.mark.parametrize("in_channels, size", [(1, 40), (3, 40), (1, 32), (3, 32)])
def test_output_shape(in_channels, size):
    torch.manual_seed(0)
    m = ResNetBackbone(in_channels=in_channels)
    out = m(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_num_classes_and_deeper_stages():
    m = ResNetBackbone(num_classes=7, widths=(8, 12, 16, 24), depths=(1, 2, 1, 1))
    assert m(torch.randn(3, 1, 32, 32)).shape == (3, 7)
    assert len(m.stages) == 4 and [len(s) for s in m.stages] == [1, 2, 1, 1]


@pytest.mark.parametrize("stem_stride, size, expected", [
    (2, 40, {"stem": (16, 20), "stage1": (16, 20), "stage2": (32, 10), "stage3": (64, 5)}),
    (1, 40, {"stem": (16, 40), "stage1": (16, 40), "stage2": (32, 20), "stage3": (64, 10)}),
    (2, 32, {"stem": (16, 16), "stage1": (16, 16), "stage2": (32, 8), "stage3": (64, 4)}),
])
def test_features(stem_stride, size, expected):
    torch.manual_seed(0)
    m = ResNetBackbone(stem_stride=stem_stride).eval()
    x = torch.randn(2, 1, size, size)
    feats = m.features(x)
    assert list(feats) == ["stem", "stage1", "stage2", "stage3"]
    for name, (c, s) in expected.items():
        assert feats[name].shape == (2, c, s, s), name
    # the classifier reads the last stage
    logits = m.head(torch.flatten(m.pool(feats["stage3"]), 1))
    assert torch.allclose(logits, m(x), atol=1e-6)


def test_wrong_input_channels():
    m = ResNetBackbone(in_channels=3)
    with pytest.raises(ValueError, match=r"in_channels=3.*\(2, 1, 32, 32\)"):
        m(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="in_channels=3"):
        m.features(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.randn(3, 32, 32))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(in_channels=0), "in_channels must be a positive int, got 0"),
    (dict(in_channels=1.0), "in_channels must be a positive int"),
    (dict(num_classes=0), "num_classes must be a positive int, got 0"),
    (dict(widths=(16, 32), depths=(1, 1, 1)), r"equal length.*widths=\(16, 32\), depths=\(1, 1, 1\)"),
    (dict(widths=(), depths=()), "non-empty"),
    (dict(widths=(16, 0, 64)), "must be positive"),
    (dict(depths=(1, 0, 1)), "must be positive"),
    (dict(stem_stride=3), "stem_stride must be 1 or 2, got 3"),
    (dict(position="middle"), r"position must be one of .*'standard'.*got 'middle'"),
])
def test_bad_constructor_args(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ResNetBackbone(**kwargs)


def test_basic_block_bad_position():
    with pytest.raises(ValueError, match="'middle'"):
        BasicBlock(8, 8, position="middle")


@pytest.mark.parametrize("position, depths, expected", [
    ("standard", (1, 1, 1), [16, 32, 64]),
    ("post", (1, 1, 1), [16, 32, 64]),
    ("identity", (1, 1, 1), [16, 32, 64]),
    ("pre", (1, 1, 1), [16, 16, 32]),
    ("standard", (2, 1, 2), [16, 16, 32, 64, 64]),
    ("pre", (2, 1, 2), [16, 16, 16, 32, 64]),
])
def test_attention_factory_called_once_per_block(position, depths, expected):
    factory, calls = recording_factory()
    m = ResNetBackbone(depths=depths, attention=factory, position=position)
    assert calls == expected
    mods = m.attention_modules()
    assert [a.channels for a in mods] == expected
    assert all(isinstance(a, Scale) for a in mods)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)  # channel counts really fit


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity"])
def test_gradients_reach_attention_params(position):
    torch.manual_seed(0)
    factory, _ = recording_factory()
    m = ResNetBackbone(attention=factory, position=position)
    x = torch.randn(4, 1, 32, 32)
    loss = nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for a in m.attention_modules():
        assert a.weight.grad is not None
        assert a.weight.grad.abs().sum() > 0
    names = {n for n, _ in m.named_parameters()}
    assert "stages.0.0.attention.weight" in names


def test_baseline_has_no_attention_modules():
    m = ResNetBackbone()
    assert m.attention_modules() == []
    factory, _ = recording_factory()
    with_att = ResNetBackbone(attention=factory)
    n_base = sum(p.numel() for p in m.parameters())
    n_att = sum(p.numel() for p in with_att.parameters())
    assert n_att - n_base == 16 + 32 + 64


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity"])
def test_position_places_the_module_where_documented(position):
    """With an attention module that outputs zeros, each placement has a closed form."""
    torch.manual_seed(0)
    block = BasicBlock(6, 6, attention=Zero, position=position).eval()
    plain = BasicBlock(6, 6).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 6, 8, 8)

    def branch(z):
        return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(z)))))

    with torch.no_grad():
        y = block(x)
        expected = {
            "standard": torch.relu(x),                          # relu(x + A(F(x))) with A = 0
            "pre": torch.relu(x + branch(torch.zeros_like(x))), # relu(x + F(A(x))): shortcut ungated
            "post": torch.zeros_like(x),                        # A(relu(x + F(x)))
            "identity": torch.relu(branch(x)),                  # relu(A(x) + F(x))
        }[position]
        assert torch.allclose(y, expected, atol=1e-6)
        assert torch.allclose(plain(x), torch.relu(x + branch(x)), atol=1e-6)


def test_block_shortcut_and_conv_bn_relu():
    b = BasicBlock(8, 16, stride=2)
    assert isinstance(b.shortcut, nn.Sequential)
    assert b(torch.randn(2, 8, 10, 10)).shape == (2, 16, 5, 5)
    assert isinstance(BasicBlock(8, 8).shortcut, nn.Identity)
    layer = conv_bn_relu(3, 5, 3, 2)
    out = layer(torch.randn(2, 3, 9, 9))
    assert out.shape == (2, 5, 5, 5) and (out >= 0).all()
    assert layer[0].bias is None
