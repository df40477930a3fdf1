"""Parameters, FLOPs, latency and the cost table."""
import pytest
import torch
import torch.nn as nn

from attn_lesson import CostTable, ResNetBackbone, cost_table, count_flops, count_params, measure_latency


def test_conv_flops_closed_form():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, (1, 3, 10, 10)) == 2 * 3 * 8 * 3 * 3 * 10 * 10
    # a strided conv: the output is 5x5
    strided = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    assert count_flops(strided, torch.randn(2, 3, 10, 10)) == 2 * 2 * 3 * 8 * 3 * 3 * 5 * 5


def test_linear_flops_closed_form():
    assert count_flops(nn.Linear(20, 5), (4, 20)) == 2 * 4 * 20 * 5


def test_elementwise_ops_are_free():
    m = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.ReLU(), nn.Sigmoid())
    assert count_flops(m, (1, 3, 6, 6)) == 2 * 3 * 8 * 36


def test_backbone_flops_match_sum_of_layers():
    m = ResNetBackbone(widths=(4, 8, 8))
    x = torch.randn(1, 1, 16, 16)
    expected = 0
    shapes = {}

    def hook(mod, inp, out):
        shapes[mod] = out.shape

    handles = [mod.register_forward_hook(hook) for mod in m.modules()
               if isinstance(mod, (nn.Conv2d, nn.Linear))]
    m.eval()
    with torch.no_grad():
        m(x)
    for h in handles:
        h.remove()
    for mod, shape in shapes.items():
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            expected += 2 * mod.in_channels * mod.out_channels * kh * kw * shape[2] * shape[3]
        else:
            expected += 2 * mod.in_features * mod.out_features
    assert count_flops(m, x) == expected


def test_count_params():
    lin = nn.Linear(20, 5)
    assert count_params(lin) == 20 * 5 + 5
    lin.weight.requires_grad_(False)
    assert count_params(lin) == 5
    assert count_params(lin, trainable_only=False) == 105
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))
    assert count_params(conv) == 3 * 8 * 9 + 2 * 8  # BN buffers are not parameters


def test_count_flops_and_latency_keep_training_mode():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    m.train()
    count_flops(m, (1, 1, 8, 8))
    assert m.training
    ms = measure_latency(m, (1, 1, 8, 8), warmup=1, repeats=3)
    assert isinstance(ms, float) and ms > 0 and m.training
    m.eval()
    measure_latency(m, torch.randn(1, 1, 8, 8), warmup=0, repeats=1)
    assert not m.training


@pytest.mark.parametrize("shape", [(1, 3, -10, 10), (10,), (1, 3, 10.5, 10), (1, 0, 4, 4)])
def test_bad_input_shape(shape):
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match="input shape must be a tuple of positive ints"):
        count_flops(conv, shape)
    with pytest.raises(ValueError, match="input shape"):
        measure_latency(conv, shape, repeats=1)


def test_bad_latency_settings():
    with pytest.raises(ValueError, match="repeats=0"):
        measure_latency(nn.Linear(2, 2), (1, 2), repeats=0)
    with pytest.raises(ValueError, match="warmup=-1"):
        measure_latency(nn.Linear(2, 2), (1, 2), warmup=-1)


def test_cost_table_ratios():
    models = {"base": nn.Conv2d(3, 8, 3, padding=1, bias=False),
              "double": nn.Conv2d(3, 16, 3, padding=1, bias=False)}
    table = cost_table(models, (1, 3, 10, 10), repeats=3)
    assert isinstance(table, CostTable) and table.baseline == "base"
    base, double = table.row("base"), table.row("double")
    assert base["params_ratio"] == base["flops_ratio"] == base["latency_ratio"] == 1.0
    assert base["flops"] == 2 * 3 * 8 * 9 * 100 and base["params"] == 3 * 8 * 9
    assert double["params_ratio"] == pytest.approx(2.0) and double["flops_ratio"] == pytest.approx(2.0)
    assert double["latency_ms"] > 0 and double["latency_ratio"] > 0
    text = str(table)
    assert "base" in text and "double" in text and "latency ms" in text and "2.000" in text
    with pytest.raises(KeyError):
        table.row("missing")


def test_cost_table_named_baseline_without_latency():
    models = {"small": nn.Linear(10, 4), "big": nn.Linear(10, 8)}
    table = cost_table(models, (2, 10), baseline="big", latency=False)
    assert table.baseline == "big"
    assert table.row("big")["flops_ratio"] == 1.0
    assert table.row("small")["flops_ratio"] == pytest.approx(0.5)
    assert table.row("small")["params_ratio"] == pytest.approx(44 / 88)
    assert "latency_ms" not in table.row("small") and "latency" not in str(table)


def test_cost_table_bad_arguments():
    with pytest.raises(ValueError, match="baseline 'nope' is not one of the models"):
        cost_table({"a": nn.Linear(2, 2)}, (1, 2), baseline="nope", latency=False)
    with pytest.raises(ValueError, match="non-empty"):
        cost_table({}, (1, 2))
