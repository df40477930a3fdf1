"""Grad-CAM (checked against CAM, where the answer is known analytically) and the localisation
scores on hand-made maps with known answers."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from attn_lesson.maps import upsample
from attn_lesson import (GradCAM, ResNetBackbone, box_area_fraction, box_energy, localisation_scores,
                         pointing_game)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class CamNet(nn.Module):
    """conv -> ReLU -> GAP -> linear: the architecture for which CAM is defined."""

    def __init__(self, k=6, classes=4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, k, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(k, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_gradcam_equals_cam_on_a_gap_linear_network():
    net = CamNet()
    x = torch.randn(5, 1, 8, 7)
    target = torch.tensor([0, 1, 2, 3, 1])
    with GradCAM(net, net.features) as cam:
        maps = cam(x, target)
    A = net.features(x)                                        # (B, K, h, w)
    w = net.fc.weight[target]                                  # (B, K)
    expected = F.relu((w[:, :, None, None] * A).sum(1)) / (8 * 7)
    torch.testing.assert_close(maps, expected.detach())
    assert maps.shape == (5, 8, 7) and not maps.requires_grad


def test_gradcam_defaults_to_the_predicted_class_and_restores_state():
    net = CamNet()
    net.train()
    x = torch.randn(3, 1, 6, 6)
    with GradCAM(net, net.features) as cam:
        default = cam(x)
        pred = net(x).argmax(1)
        torch.testing.assert_close(default, cam(x, pred))
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    assert not net.features._forward_hooks                    # hook removed on exit


def test_gradcam_on_the_backbone():
    net = ResNetBackbone()
    with GradCAM(net, net.stages[2]) as cam:
        maps = cam(torch.randn(2, 1, 40, 40), torch.tensor([3, 7]))
    assert maps.shape == (2, 5, 5) and (maps >= 0).all()


def test_gradcam_rejects_foreign_layer_and_bad_target():
    net = CamNet()
    with pytest.raises(ValueError, match="layer must be a sub-module of model"):
        GradCAM(net, nn.Conv2d(1, 1, 1))
    with GradCAM(net, net.features) as cam:
        with pytest.raises(ValueError, match="target must hold one class"):
            cam(torch.randn(2, 1, 4, 4), torch.tensor([0, 9]))
        with pytest.raises(ValueError, match="target must hold one class"):
            cam(torch.randn(2, 1, 4, 4), torch.tensor([0]))


# ---------------------------------------------------------------- localisation scores
BOX = torch.tensor([[2.0, 3.0, 6.0, 8.0]])      # x0, y0, x1, y1 (exclusive): 4 wide, 5 high


def test_energy_of_a_map_that_is_one_inside_the_box():
    m = torch.zeros(1, 10, 10)
    m[0, 3:8, 2:6] = 1.0
    assert box_energy(m, BOX, 10).item() == pytest.approx(1.0)
    assert box_area_fraction(BOX, 10).item() == pytest.approx(20 / 100)
    assert pointing_game(m, BOX, 10).item() == 1.0


def test_uniform_map_scores_the_chance_level():
    s = localisation_scores(torch.full((1, 10, 10), 0.3), BOX, (10, 10))
    assert s["energy"] == pytest.approx(0.2) and s["chance"] == pytest.approx(0.2)
    assert s["energy_gain"] == pytest.approx(1.0)


def test_half_the_mass_inside():
    m = torch.zeros(1, 10, 10)
    m[0, 4, 3] = 2.0          # inside (x=3, y=4)
    m[0, 0, 9] = 2.0          # outside
    assert box_energy(m, BOX, 10).item() == pytest.approx(0.5)


def test_pointing_game_with_tolerance():
    m = torch.zeros(1, 10, 10)
    m[0, 3, 7] = 1.0          # pixel x=7 (centre 7.5): one pixel right of the box (x1=6 exclusive)
    assert pointing_game(m, BOX, 10).item() == 0.0
    assert pointing_game(m, BOX, 10, tolerance=1).item() == 0.0
    assert pointing_game(m, BOX, 10, tolerance=2).item() == 1.0


def test_low_resolution_maps_are_upsampled_to_the_image():
    # a 2x2 map whose top-left cell is hot, on a 10x10 image (stride 5)
    m = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    quarter = torch.tensor([[0.0, 0.0, 5.0, 5.0]])
    # stride anchor: cell 0 sits on pixel 0, cell 1 on pixel 5, so the mass falls off linearly to
    # zero at pixel 5 and all of it lies in the top-left quarter
    assert box_energy(m, quarter, 10).item() == pytest.approx(1.0)
    # centre anchor: cell 0 sits on pixel 2 (centre of its 5x5 block); bilinear blur leaks mass
    e = box_energy(m, quarter, 10, anchor="centre").item()
    assert 0.6 < e < 1.0
    assert pointing_game(m, quarter, 10).item() == 1.0


def test_batch_means_and_4d_maps():
    m = torch.zeros(2, 1, 10, 10)
    m[0, 0, 3:8, 2:6] = 1.0   # image 0: perfect
    m[1, 0, 0, 0] = 1.0       # image 1: all outside
    s = localisation_scores(m, BOX.repeat(2, 1), 10)
    assert s["energy"] == pytest.approx(0.5) and s["pointing"] == pytest.approx(0.5)


def test_zero_map_scores_chance():
    assert box_energy(torch.zeros(1, 10, 10), BOX, 10).item() == pytest.approx(0.2)


@pytest.mark.parametrize("maps, boxes, size, match", [
    (torch.rand(2, 5, 5), torch.rand(3, 4), 10, "boxes must have shape"),
    (torch.rand(2, 5), torch.rand(2, 4), 10, "maps must have shape"),
    (torch.rand(2, 3, 5, 5), torch.rand(2, 4), 10, "4-D maps must have one channel"),
    (-torch.rand(2, 5, 5), torch.rand(2, 4), 10, "maps must be non-negative"),
    (torch.rand(2, 5, 5), torch.rand(2, 4), 0, "image_size must be positive"),
])
def test_scores_reject_bad_input(maps, boxes, size, match):
    with pytest.raises(ValueError, match=match):
        localisation_scores(maps, boxes, size)


def test_pointing_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        pointing_game(torch.rand(1, 4, 4), BOX, 10, tolerance=-1)


# ---------------------------------------------------------------- where a map cell sits
def test_stride_anchor_puts_a_cell_on_the_pixel_a_strided_conv_centres_it_on():
    # a 3x3 conv with stride 2 and padding 1 centres output cell i on input pixel 2 i
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0                      # pass the centre tap through
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 6, 10] = 1.0
    y = conv(x)[:, 0]                                     # (1, 8, 8): hot cell at (3, 5)
    assert y[0, 3, 5] == 1.0
    up = upsample(y, 16)                                  # default anchor="stride"
    assert divmod(up[0].argmax().item(), 16) == (6, 10)   # back on the input pixel
    assert up[0, 6, 10] == 1.0
    centre = upsample(y, 16, anchor="centre")             # shifted half a pixel: mass spread
    assert centre[0, 6, 10] < 1.0 and centre[0, 7, 11] > 0


def test_upsample_stride_anchor_exact_values():
    m = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])           # 2x2 -> 4x4, stride 2
    up = upsample(m, 4)
    torch.testing.assert_close(up[0, 0], torch.tensor([0.0, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(up[0, :, 0], torch.tensor([0.0, 1.0, 2.0, 2.0]))
    torch.testing.assert_close(upsample(m, 2), m)
    assert upsample(torch.ones(1, 1, 1), 5).shape == (1, 5, 5)


def test_upsample_rejects_bad_anchor():
    with pytest.raises(ValueError, match="anchor must be one of"):
        upsample(torch.rand(1, 2, 2), 4, anchor="corner")
    with pytest.raises(ValueError, match="anchor must be one of"):
        localisation_scores(torch.rand(1, 2, 2), BOX, 10, anchor="left")


def test_receptive_field_of_the_backbone_stages():
    from attn_lesson.maps import receptive_field
    from attn_lesson.models import ResNetBackbone
    net = ResNetBackbone().train()
    # stem 3x3/2; each stage adds two 3x3 convolutions at the current stride: 3, 11, 23, 47
    assert [receptive_field(net, (1, 96, 96), s) for s in ("stem", "stage1", "stage2", "stage3")] == \
        [(3, 3), (11, 11), (23, 23), (47, 47)]
    assert net.training                                        # mode restored
    assert receptive_field(ResNetBackbone(stem_stride=1), (1, 96, 96), "stage3") == (25, 25)
    # the relational digits keep 48 columns between the digits: more than a stage-3 unit sees
    assert receptive_field(net, (1, 32, 96), "stage3")[1] < 48 + 2
    with pytest.raises(ValueError, match="stage must be one of"):
        receptive_field(net, (1, 40, 40), "stage4")
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        receptive_field(net, (40, 40), "stage1")
