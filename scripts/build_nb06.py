"""Build notebooks/06_spatial_attention.ipynb (stored without outputs)."""
from nbtools import SETUP, badge, code, md, save

NAME = "06_spatial_attention.ipynb"
cells = [
md(f"""
# 6. Spatial attention and Grad-CAM

Part II taught the network *which* channels matter; every position of a channel got the same
gate. On Cluttered Digits that leaves something on the table: the digit occupies a box of
12–20 px somewhere on a 40×40 canvas, and the rest is clutter cut from other digits. A
**spatial** gate decides *where* to look: one number per position, shared by all channels.
The simplest such gate is the spatial attention module of CBAM {{cite}}`woo2018cbam`: pool the
feature map across channels in two ways, convolve the two pooled maps with a 7×7 kernel, squash
with a sigmoid, multiply. This chapter opens Part III, so it also builds the two tools that every
later spatial chapter reuses: **Grad-CAM** {{cite}}`selvaraju2017gradcam`, which asks a trained
network where the evidence for a class lies, and a **localisation score**, which turns any map
(a gate's own map or a Grad-CAM map) into a number by comparing it with the digit's
ground-truth box.

**You will learn to**
- derive CBAM's spatial gate with every tensor's shape, build it step by step and check it,
  number for number, against `attn_lesson.SpatialGate`;
- count what the gate costs (exactly $2k^2+2$ parameters per block) and measure its latency;
- build Grad-CAM from scratch with forward and backward hooks, check it against
  `attn_lesson.GradCAM`, and prove on our backbone that Grad-CAM equals the older CAM;
- read and compute the localisation score (energy inside the box vs the box's area share,
  and the pointing game) on maps whose answers are known;
- compare a baseline and a spatial-gate network over several seeds: accuracy, and how well
  their Grad-CAM maps and the gate's own maps point at the digit;
- test the paper's design choices, both poolings and a 7×7 kernel, with an ablation.

**Runtime:** about 2 min on a 2-core CPU (`cpu` profile); a few minutes on a GPU (`gpu`
profile: more data, epochs and seeds, a fuller ablation).

{badge(NAME)}
"""),
code(SETUP + """
import inspect
import time
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import attn_lesson as al
from attn_lesson import viz

PROFILE = al.get_profile()
DEVICE = al.get_device()
al.seed_everything(0)
T_START = time.perf_counter()
print(al.env_report(PROFILE))
"""),
md("""
## Experiment sizes

Everything this chapter trains is set here, for both profiles; the `cpu` column is what CI and
a laptop run. `clutter` is the number of fragments of other digits per image (the workbench
default is 4): clutter is the premise of a spatial gate, since there is something to ignore.
The main comparison (baseline vs 7×7 spatial gate with both poolings) uses `seeds`; the
ablation variants use `ablation_seeds` — a single seed on the `cpu` profile, whose verdicts
therefore borrow the seed noise measured in the main comparison. `n_score` test images are
scored for localisation.
"""),
code("""
CFG = PROFILE.pick(
    cpu=dict(n_train=4000, n_test=1000, epochs=5, clutter=4, seeds=(0, 1, 2), batch_size=64,
             lr=5e-3, ablation_seeds=(0,),
             ablations={"avg, 7x7": dict(kernel_size=7, pool="avg"),
                        "max, 7x7": dict(kernel_size=7, pool="max"),
                        "both, 3x3": dict(kernel_size=3, pool="both")},
             n_score=500),
    gpu=dict(n_train=20000, n_test=5000, epochs=10, clutter=4, seeds=(0, 1, 2, 3, 4),
             batch_size=128, lr=5e-3, ablation_seeds=(0, 1, 2),
             ablations={"avg, 7x7": dict(kernel_size=7, pool="avg"),
                        "max, 7x7": dict(kernel_size=7, pool="max"),
                        "both, 3x3": dict(kernel_size=3, pool="both"),
                        "avg, 3x3": dict(kernel_size=3, pool="avg"),
                        "max, 3x3": dict(kernel_size=3, pool="max"),
                        "both, 5x5": dict(kernel_size=5, pool="both")},
             n_score=2000),
)
CFG
"""),
md(r"""
## 1. Intuition: where is the ink dense over a wide window?

Before any equation, a hand-made spatial gate. We take cluttered test images, shrink them to
20×20 (the resolution of the backbone's first stage, which follows a stride-2 stem) and make
four "feature channels" with fixed 3×3 filters. At every position we pool **across channels**:
the average and the maximum. Then, instead of a learned convolution, we simply average the two
pooled maps over a $k\times k$ window, standardise, and apply a sigmoid. The result is a map
$\mathbf{M}$ with one value in $(0,1)$ per position.

With $k=3$ the window sees about 6×6 input pixels: a stroke of the digit and a clutter fragment
look alike. With $k=7$ it sees about 14×14 input pixels, roughly the size of a digit, so a
position scores high only if there is a lot of ink *around* it. The white box is the digit's
ground-truth box. Under the pictures we count, over 500 test images, how often the map's
**peak** lands inside the digit's box (the pointing game of section 5).
"""),
code("""
demo = al.cluttered_digits(500, "test", clutter=CFG["clutter"], seed=7)
img20 = F.avg_pool2d(demo.images, 2)                                  # (500, 1, 20, 20)
filters = torch.tensor([
    [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],                             # horizontal edges
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],                             # vertical edges
    [[1, 1, 1], [1, 1, 1], [1, 1, 1]],                                # blur
    [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],                        # spots
], dtype=torch.float32).unsqueeze(1) / 4
feats = F.relu(F.conv2d(img20, filters, padding=1))                   # X: (500, C=4, 20, 20)
d_avg = feats.mean(1, keepdim=True)                                   # (500, 1, 20, 20)
d_max = feats.amax(1, keepdim=True)                                   # (500, 1, 20, 20)

def hand_gate(k):
    both = (d_avg + d_max) / 2
    local = F.avg_pool2d(both, k, stride=1, padding=k // 2, count_include_pad=True)
    mu, sd = local.mean((2, 3), keepdim=True), local.std((2, 3), keepdim=True)
    return torch.sigmoid(3 * (local - mu) / sd)                       # (500, 1, 20, 20)

maps_demo = {k: hand_gate(k) for k in (3, 7)}
hits = {k: al.pointing_game(m, demo.boxes, 40).mean().item() for k, m in maps_demo.items()}
area = al.box_area_fraction(demo.boxes, 40).mean().item()

i = 0
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
panels = [(demo.images[i, 0], "input (40x40)"), (d_avg[i, 0], "avg over channels (20x20)"),
          (d_max[i, 0], "max over channels")]
panels += [(maps_demo[k][i, 0], f"M with a {k}x{k} window") for k in (3, 7)]
for ax, (a, t) in zip(axes, panels):
    big = a.shape[-1] == 40
    ax.imshow(a, cmap="gray" if big else "magma")
    s = 1 if big else 0.5
    x0, y0, x1, y1 = (float(v) * s for v in demo.boxes[i])
    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                               edgecolor="tab:red" if big else "white", lw=1.5))
    ax.set_title(t, fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()
print(f"peak of the hand-made map inside the digit's box, over {len(demo)} images: "
      f"3x3 window {hits[3]:.0%}, 7x7 window {hits[7]:.0%} "
      f"(a random point: {area:.0%}, the mean box area share)")
assert hits[7] > hits[3] > area
"""),
md(r"""
The wider window puts the peak on the digit more often (the assert checks the order of the
printed rates); its map is also blurrier, a price we will meet again when we score maps. The
learned gate chooses its own $k\times k$ weights (not a plain average) and can weigh the two
pooled maps differently, but its view is limited in the same way: **a position is judged by a
$k\times k$ neighbourhood of two channel summaries**.

## 2. Derivation

Let $\mathbf{X}\in\mathbb{R}^{C\times H\times W}$ be a feature map (code: `(B, C, H, W)`). The
spatial attention module of CBAM {cite}`woo2018cbam` computes

**1. Two channel descriptors** — pool *across channels* at every position $(i,j)$:

$$
\mathbf{F}^{s}_{\mathrm{avg}}(i,j) = \frac{1}{C}\sum_{c=1}^{C} X_c(i,j), \qquad
\mathbf{F}^{s}_{\mathrm{max}}(i,j) = \max_{c} X_c(i,j), \qquad
\mathbf{F}^{s}_{\mathrm{avg}},\ \mathbf{F}^{s}_{\mathrm{max}}\in\mathbb{R}^{1\times H\times W}.
$$

These are the transposes of SE's squeeze: $\mathrm{GAP}/\mathrm{GMP}$ remove $H\times W$ and keep
$C$; here the channel axis is removed and the positions are kept. They are stacked in the
paper's order into $[\mathbf{F}^{s}_{\mathrm{avg}};\mathbf{F}^{s}_{\mathrm{max}}]\in\mathbb{R}^{2\times H\times W}$.

**2. A $k\times k$ convolution to one channel** (weights $\mathbf{w}\in\mathbb{R}^{1\times 2\times k\times k}$,
no bias, zero padding $\lfloor k/2\rfloor$ so the size stays $H\times W$), then a sigmoid:

$$
\mathbf{M}(\mathbf{X}) = \sigma\Big(f^{k\times k}\big([\mathbf{F}^{s}_{\mathrm{avg}};\mathbf{F}^{s}_{\mathrm{max}}]\big)\Big)
\in (0,1)^{1\times H\times W},
\qquad
f^{k\times k}(\mathbf{D})(i,j) = \sum_{d=1}^{2}\sum_{u,v=-\lfloor k/2\rfloor}^{\lfloor k/2\rfloor}
w_{d,u,v}\, D_d(i+u, j+v).
$$

The paper uses $k=7$. The official code and timm put a one-channel batch norm between the
convolution and the sigmoid, $\sigma(\mathrm{BN}(f^{k\times k}(\cdot)))$; `attn_lesson` does too
(`norm=True`). In evaluation mode BN is an affine map $z\mapsto \gamma (z-\mu)/\sqrt{v+\epsilon}+\beta$
with running mean $\mu$ and variance $v$.

**3. Multiply** — every channel at position $(i,j)$ is scaled by the same $M(i,j)$:

$$
\tilde{\mathbf{X}} = \mathbf{X}\otimes\mathbf{M}(\mathbf{X}) \in\mathbb{R}^{C\times H\times W}
\qquad\text{(code: `x * m`, with `m` of shape `(B, 1, H, W)` broadcast over `C`)}.
$$

**Parameters:** $2k^2$ convolution weights plus BN's $\gamma,\beta$: $2k^2+2$ per gate, independent
of $C$ (100 for $k=7$). **FLOPs:** the convolution costs $2\cdot 2k^2$ per position (counting a
multiply-add as 2), i.e. $4k^2HW$ per gate.

**Why both poolings?** The average says how much the channels respond at a position overall;
the maximum says whether *one* channel responds strongly, e.g. a rare feature that the average
dilutes among $C$ channels. The CBAM paper argues, for its channel module, that max pooling adds a clue the average misses,
and it pools both ways in its spatial module too. **Why 7×7?** The gate
decides for each position from a $k\times k$ neighbourhood only; a larger kernel lets it use
context — is this pixel part of a large object? — at the price of $2k^2$ weights, which is
negligible. Both choices are tested in section 8.

In our backbone the gate sits in each residual block's attention slot, after the branch's last
BN and before the addition (`ResNetBackbone(attention=al.spatial_gate(7))`), so it gates the
residual branch while the shortcut passes through; blocks 1, 2, 3 see 20×20, 10×10 and 5×5 maps.

## 3. Build it step by step

A batch of $B=2$ feature maps with $C=8$ channels of 10×10, and the weights of an
`al.SpatialGate(7)`, whose BN we give non-trivial running statistics (otherwise BN in eval
mode would be almost the identity and we would not test it).
"""),
code("""
al.seed_everything(0)
B, C, H, W, k = 2, 8, 10, 10, 7
gate = al.SpatialGate(k)
bn = gate.conv.bn
with torch.no_grad():
    bn.running_mean.fill_(0.3)
    bn.running_var.fill_(2.5)
    bn.weight.fill_(1.7)
    bn.bias.fill_(-0.4)
gate.eval()
X = torch.randn(B, C, H, W)

F_avg = X.mean(dim=1, keepdim=True)                           # (B, 1, H, W)
F_max = X.max(dim=1, keepdim=True).values                     # (B, 1, H, W)
D = torch.cat([F_avg, F_max], dim=1)                          # (B, 2, H, W): [avg; max]
w = gate.conv.conv.weight                                     # (1, 2, k, k)
z = F.conv2d(D, w, padding=k // 2)                            # (B, 1, H, W)
z_bn = (z - bn.running_mean.view(1, 1, 1, 1)) / torch.sqrt(bn.running_var.view(1, 1, 1, 1) + bn.eps) \\
       * bn.weight.view(1, 1, 1, 1) + bn.bias.view(1, 1, 1, 1)
M = torch.sigmoid(z_bn)                                       # (B, 1, H, W)
X_out = X * M                                                 # (B, C, H, W)
for name, t in [("X", X), ("F_avg", F_avg), ("F_max", F_max), ("[avg; max]", D), ("conv", z),
                ("M", M), ("X * M", X_out)]:
    print(f"{name:>10}: {tuple(t.shape)}")
assert D.shape == (B, 2, H, W) and w.shape == (1, 2, k, k)
assert M.shape == (B, 1, H, W) and X_out.shape == X.shape
assert bool(((M > 0) & (M < 1)).all())
"""),
md("""
The convolution is nothing more than a weighted sum over a $k\\times k$ window of the two
descriptor maps. One position, written out as that double sum (zero padding handled by
skipping positions outside the map):
"""),
code("""
b, i, j, r = 1, 2, 6, k // 2
acc = torch.zeros(())
for d in range(2):
    for u in range(-r, r + 1):
        for v in range(-r, r + 1):
            if 0 <= i + u < H and 0 <= j + v < W:
                acc = acc + w[0, d, u + r, v + r] * D[b, d, i + u, j + v]
print(f"double sum at (b={b}, i={i}, j={j}): {acc.item():+.5f}; conv2d: {z[b, 0, i, j].item():+.5f}")
torch.testing.assert_close(acc, z[b, 0, i, j])
"""),
md("""
The package's module, which later chapters (CBAM, BAM) import:
"""),
code("""
print(inspect.getsource(al.SpatialGate.descriptors))
print(inspect.getsource(al.SpatialGate.attention))
print(inspect.getsource(al.SpatialGate.forward))
print(gate)
"""),
code("""
with torch.no_grad():
    out_module = gate(X)
torch.testing.assert_close(gate.descriptors(X), D)
torch.testing.assert_close(out_module, X_out)
torch.testing.assert_close(gate.last_map, M)
print("step-by-step == al.SpatialGate (BN in eval mode); max abs difference:",
      f"{(out_module - X_out).abs().max().item():.2e}")
"""),
md(r"""
## 4. Cost

The gate's parameters do not depend on $C$: $2k^2+2$ per block, and $k^2+2$ with a single
pooling. Its FLOPs, $4k^2HW$ per block, are counted below and compared with
`FlopCounterMode` (which counts the convolution, not the pooling, BN, sigmoid or product).
"""),
code("""
for kk, pool in [(7, "both"), (3, "both"), (7, "avg")]:
    n_in = 2 if pool == "both" else 1
    counted = al.count_params(al.SpatialGate(kk, pool=pool))
    print(f"SpatialGate(k={kk}, pool={pool!r}): {counted} parameters (formula {n_in * kk * kk + 2})")
    assert counted == n_in * kk * kk + 2

al.seed_everything(0)
cost = al.cost_table({"baseline": al.ResNetBackbone(),
                      "+SG 7x7": al.ResNetBackbone(attention=al.spatial_gate(7)),
                      "+SG 3x3": al.ResNetBackbone(attention=al.spatial_gate(3))},
                     (1, 1, 40, 40), repeats=20)
print(cost)
hw = [20 * 20, 10 * 10, 5 * 5]                       # block resolutions on a 40x40 input
for name, kk in [("+SG 7x7", 7), ("+SG 3x3", 3)]:
    extra = cost.row(name)["flops"] - cost.row("baseline")["flops"]
    print(f"{name}: extra FLOPs counted {extra:,}, formula 4 k^2 sum(HW) = {4 * kk * kk * sum(hw):,}")
    assert extra == 4 * kk * kk * sum(hw)
row7 = cost.row("+SG 7x7")
print(f"the 7x7 gate adds {100 * (row7['params_ratio'] - 1):.2f}% parameters and "
      f"{100 * (row7['flops_ratio'] - 1):.1f}% counted FLOPs; latency ratio {row7['latency_ratio']:.2f}")
print("latency grew by more than the FLOP count:", row7["latency_ratio"] > row7["flops_ratio"])
"""),
md("""
The parameter and FLOP overheads are the printed percentages. Latency need not follow FLOPs:
the gate adds several small sequential operations (two poolings, a concatenation, a
one-output-channel convolution, BN, sigmoid, a broadcast product) whose fixed cost FLOPs do
not see; the last line says whether latency grew faster than FLOPs here. Latency at batch size 1
on a shared machine is noisy; the training throughput printed in section 7 is a second,
independent measurement.

## 5. A number for a map: the localisation score

Pictures of attention maps are easy to over-read. Every spatial chapter of this book therefore
scores maps against the digit's ground-truth box $\\mathcal{B}$ (a rectangle of pixels, returned
by `al.cluttered_digits`), with `attn_lesson.maps`:

- **energy in the box**: the share of the map's mass inside the box,
  $E = \\sum_{p\\in\\mathcal{B}} m_p \\,/\\, \\sum_{p} m_p$ (`box_energy`);
- **chance level**: the same share for a uniform map, which is the box's area share
  $|\\mathcal{B}|/(HW)$ (`box_area_fraction`). Digits of different sizes have different chance
  levels, so we also report the **energy gain** $E / (|\\mathcal{B}|/HW)$, averaged over images:
  1 means "no better than uniform";
- **pointing game**: 1 if the map's maximum lies inside the box, else 0; its mean over images
  is the hit rate (`pointing_game`; the test was introduced for top-down attention maps
  {cite}`zhang2016excitation`). A point dropped uniformly at random hits with probability
  equal to the area share, so that is its chance level too.

Maps of any resolution are upsampled bilinearly to the 40×40 image first, so a 5×5 map and a
20×20 map are scored on the same pixels; maps must be non-negative (sigmoid outputs, ReLU'd
Grad-CAM). Below, hand-made 40×40 maps for a 20×20 box at (10, 10)–(30, 30), whose answers we
know: the box covers 400 of 1600 pixels, a share of 0.25.
"""),
code("""
S = 40
box = torch.tensor([[10.0, 10.0, 30.0, 30.0]])         # (x0, y0, x1, y1), x1/y1 exclusive
def blank():
    return torch.zeros(1, S, S)
inside, left_half, outside = blank(), blank(), blank() + 1
inside[:, 10:30, 10:30] = 1
left_half[:, :, :20] = 1
outside[:, 10:30, 10:30] = 0
peak = torch.zeros(1, 5, 5)
peak[0, 2, 2] = 1                                       # a 5x5 map: one hot cell in the middle
hand_maps = {"uniform": torch.ones(1, S, S), "box only": inside, "left half": left_half,
             "outside only": outside, "5x5, centre cell": peak}
# known answers: (energy, pointing)
expected = {"uniform": (0.25, 0.0), "box only": (1.0, 1.0), "left half": (0.25, 0.0),
            "outside only": (0.0, 0.0), "5x5, centre cell": ((63 / 64) ** 2, 1.0)}
print(f"{'map':>18} {'energy':>7} {'chance':>7} {'gain':>6} {'pointing':>9}")
for name, m in hand_maps.items():
    sc = al.localisation_scores(m, box, S)
    print(f"{name:>18} {sc['energy']:7.3f} {sc['chance']:7.3f} {sc['energy_gain']:6.2f} {sc['pointing']:9.0f}")
    assert abs(sc["chance"] - 0.25) < 1e-6
    assert abs(sc["energy"] - expected[name][0]) < 1e-5 and sc["pointing"] == expected[name][1]
"""),
md("""
Three things these cases teach. The *left half* map puts half the image's mass in a region that
contains half of the box: energy 0.25, exactly the chance level — covering the object is not
enough, the map must also avoid the background. The *uniform* map fails the pointing game:
with ties the maximum is the first pixel in row-major order, the top-left corner, which is
outside the box (for a constant map the pointing game is meaningless, which is why we read it
together with the energy). The *5×5* map is upsampled to 40×40 by the rule checked at the end
of section 9: cell $i$ of a map with stride 8 sits on pixel $8i$, so the hot cell $(2, 2)$ sits on
pixel $(16, 16)$, and bilinear interpolation spreads it into a pyramid over pixels 9–23 in each
direction, with weight $1-|x-16|/8$. Its peak is in the box (pointing 1), but the pyramid's
outermost column and row, at pixel 9 with weight $1/8$, lie just outside the box, which starts at
pixel 10. Those carry $1/64$ of each direction's mass, so the energy is $(63/64)^2\approx0.969$,
not 1.

## 6. Grad-CAM from scratch

A spatial gate produces its own map. A network without one can still be asked where the
evidence for a class lies: **Grad-CAM** {cite}`selvaraju2017gradcam` weighs the channels of a
convolutional layer's output by how much the class score depends on them.

Let $\\mathbf{A}\\in\\mathbb{R}^{K\\times h\\times w}$ be the output of a chosen layer (we use the last
stage, $K=64$, $h=w=5$) and $y^c$ the logit of class $c$, before the softmax. Then

$$
\\alpha^c_k = \\frac{1}{hw}\\sum_{i=1}^{h}\\sum_{j=1}^{w}\\frac{\\partial y^c}{\\partial A^k_{ij}}
\\quad(\\boldsymbol{\\alpha}^c\\in\\mathbb{R}^{K}),
\\qquad
L^c_{\\text{Grad-CAM}} = \\mathrm{ReLU}\\Big(\\sum_{k=1}^{K}\\alpha^c_k\\,\\mathbf{A}^k\\Big)\\in\\mathbb{R}^{h\\times w}_{\\ge 0}.
$$

$\\alpha^c_k$ is a GAP of the gradient: how much, on average over positions, raising channel $k$
raises the class score. The ReLU keeps the positions that speak *for* class $c$.

We need two tensors from inside the network: $\\mathbf{A}$ (a **forward hook** on the layer
stores its output) and $\\partial y^c/\\partial\\mathbf{A}$ (a **backward hook** stores the gradient
that flows into the layer's output). One backward pass of $\\sum_b y^{c_b}_b$ gives every image's
gradient at once: in evaluation mode BN uses running statistics, so image $b$'s logits depend
only on image $b$'s activations. We build it on a freshly initialised backbone — the algebra
does not care whether the network is trained; trained maps follow in section 9.
"""),
code("""
al.seed_everything(0)
net = al.ResNetBackbone().eval()
x_demo = al.cluttered_digits(8, "test", clutter=CFG["clutter"], seed=3).images
layer = net.stages[-1]
store = {}
h_fwd = layer.register_forward_hook(lambda mod, inp, out: store.__setitem__("A", out.detach()))
h_bwd = layer.register_full_backward_hook(lambda mod, gin, gout: store.__setitem__("dA", gout[0]))
try:
    x_in = x_demo.clone().requires_grad_(True)   # so the hooked output is part of a graph
    logits = net(x_in)                           # (B, 10)
    cls = logits.argmax(1)                       # explain the predicted class
    net.zero_grad()
    logits.gather(1, cls[:, None]).sum().backward()
finally:
    h_fwd.remove()
    h_bwd.remove()
A, dA = store["A"], store["dA"]                  # (B, K, h, w) each
alpha = dA.mean(dim=(2, 3), keepdim=True)        # (B, K, 1, 1)
L_scratch = F.relu((alpha * A).sum(dim=1))       # (B, h, w)
for name, t in [("A", A), ("dy/dA", dA), ("alpha", alpha), ("L", L_scratch)]:
    print(f"{name:>6}: {tuple(t.shape)}")
assert A.shape == dA.shape == (8, 64, 5, 5) and L_scratch.shape == (8, 5, 5)
print("images with a non-zero map:", int((L_scratch.flatten(1).amax(1) > 0).sum()), "of 8")
"""),
md("""
The package's version, used in the rest of the book, keeps the activation in a forward hook
and asks autograd to retain its gradient (equivalent to the backward hook):
"""),
code("""
print(inspect.getsource(al.GradCAM._keep))
print(inspect.getsource(al.GradCAM.__call__))
with al.GradCAM(net, net.stages[-1]) as gradcam:
    L_pkg = gradcam(x_demo)                      # target=None: the predicted class
torch.testing.assert_close(L_pkg, L_scratch)
print("from-scratch Grad-CAM == al.GradCAM; max abs difference:",
      f"{(L_pkg - L_scratch).abs().max().item():.2e}")
"""),
md(r"""
### An analytic check: on our backbone Grad-CAM *is* CAM

Our backbone ends like the networks of the original Class Activation Mapping (CAM) method
{cite}`zhou2016cam`: the
last stage's output $\mathbf{A}$ goes through GAP and one linear layer with weights
$\mathbf{W}\in\mathbb{R}^{10\times K}$ and bias $\mathbf{b}$:

$$
y^c = \sum_{k} W_{ck}\,\frac{1}{hw}\sum_{i,j}A^k_{ij} + b_c
\;\Rightarrow\;
\frac{\partial y^c}{\partial A^k_{ij}} = \frac{W_{ck}}{hw}
\;\Rightarrow\;
\alpha^c_k = \frac{W_{ck}}{hw},
\qquad
L^c_{\text{Grad-CAM}} = \frac{1}{hw}\,\mathrm{ReLU}\Big(\sum_k W_{ck}\mathbf{A}^k\Big),
$$

which is the ReLU'd CAM map divided by $hw$. The gradient is the same at every position, so the
check needs no trained weights and must hold to floating-point precision:
"""),
code("""
Wc = net.head.weight[cls]                                   # (B, K): the row of each image's class
cam = F.relu(torch.einsum("bk,bkhw->bhw", Wc, A)) / (A.shape[2] * A.shape[3])
torch.testing.assert_close(L_scratch, cam.detach())
torch.testing.assert_close(alpha.flatten(1), Wc.detach() / 25)
print("Grad-CAM == ReLU(sum_k W_ck A^k) / (h w) on the last stage; max abs difference:",
      f"{(L_scratch - cam).abs().max().item():.2e}")
"""),
md("""
At an inner layer (e.g. the output of stage 2) the gradient varies with position and the
identity no longer holds; Grad-CAM is the generalisation of CAM to any layer (exercise 1).

## 7. Train: baseline vs spatial gate on cluttered digits

The data: one digit of 12–20 px with clutter fragments of other digits, on a 40×40 canvas.
"""),
code("""
t0 = time.perf_counter()
train = al.cluttered_digits(CFG["n_train"], "train", clutter=CFG["clutter"], seed=0)
test = al.cluttered_digits(CFG["n_test"], "test", clutter=CFG["clutter"], seed=0)
print(train, test, f"generated in {time.perf_counter() - t0:.1f} s", sep="\\n")
fig = viz.show_images(test.images[:16], test.labels[:16], test.boxes[:16], ncols=8,
                      title=f"test images with {CFG['clutter']} clutter fragments and the digit's box")
FIT = dict(epochs=CFG["epochs"], lr=CFG["lr"], batch_size=CFG["batch_size"],
           augment=al.random_shift(2))
"""),
code("""
t0 = time.perf_counter()
base_runs = al.run_seeds(lambda: al.ResNetBackbone(), train, test, seeds=CFG["seeds"],
                         label="baseline", **FIT)
sg_runs = al.run_seeds(lambda: al.ResNetBackbone(attention=al.spatial_gate(7)), train, test,
                       seeds=CFG["seeds"], label="+SG 7x7", **FIT)
for h in base_runs.histories + sg_runs.histories:
    print(h)
print(base_runs)
print(sg_runs)
ips = {r.label: np.median([h.images_per_sec for h in r.histories]) for r in (base_runs, sg_runs)}
print("training throughput (median over seeds):", ", ".join(f"{k} {v:.0f} img/s" for k, v in ips.items()),
      f"; main comparison took {time.perf_counter() - t0:.0f} s")
"""),
code("""
def verdict(a_mean, a_std, b_mean, b_std):
    # difference b - a, and whether it exceeds twice the pooled seed standard deviation
    diff = b_mean - a_mean
    noise = 2 * np.sqrt((a_std ** 2 + b_std ** 2) / 2)
    return diff, noise, ("beyond the seed noise" if abs(diff) > noise else "within the seed noise")

diff, noise, word = verdict(base_runs.mean, base_runs.std, sg_runs.mean, sg_runs.std)
print(f"+SG 7x7 minus baseline: {diff:+.4f} (2 x pooled std = {noise:.4f}) -> {word}"
      + ("" if word == "within the seed noise" else f" ({'gate better' if diff > 0 else 'gate worse'})"))
for r in (base_runs, sg_runs):
    per_epoch = np.mean([h.test_acc for h in r.histories], axis=0)
    print(f"{r.label:>9}: test accuracy per epoch (mean over seeds) "
          + " ".join(f"{a:.3f}" for a in per_epoch)
          + (f"; last-epoch gain {100 * (per_epoch[-1] - per_epoch[-2]):+.1f} points" if len(per_epoch) > 1 else ""))
fig = viz.plot_curves(base_runs.histories + sg_runs.histories, metrics=("train_loss", "test_acc"),
                      title="baseline vs spatial gate, one line per seed")
fig = viz.bar_errors([base_runs.label, sg_runs.label], [base_runs.mean, sg_runs.mean],
                     [base_runs.std, sg_runs.std], points=[base_runs.accs, sg_runs.accs],
                     ylim=(0.0, 1.0), title="final test accuracy (mean ± std over seeds)")
"""),
md("""
The verdict line is computed, not written in advance: a difference counts only when it exceeds
twice the pooled seed standard deviation (the rule of chapter 2). Read it together with the
per-epoch accuracies: where test accuracy still gains several points in the last epoch, the
models are under-trained and the comparison says which one learns faster within this budget,
not which one ends up better. At initialisation the gate's BN centres its logits at 0, so its
values start around $\\sigma(0)=0.5$ and the residual branch is roughly halved at first — one
reason why gated models can start slower (chapter 3 saw SE's gates start there too); the `gpu`
profile trains longer.

## 8. Why both poolings, and why 7×7? An ablation

The CBAM paper {cite}`woo2018cbam` studies the spatial module on ImageNet with ResNet-50, with
its channel module in front. It compares two ways of summarising the channels — pooling
(average *and* max) vs a learned 1×1 convolution — and two kernel sizes, 3 and 7, and reports
that channel pooling with a 7×7 kernel gives the lowest error; the differences between the
variants are small (fractions of a percentage point of top-1 error). The paper does not test
average or max pooling alone in the spatial module (it does for the channel module); we add
that here. Our variants replace only the gate of the main model; the 7×7, both-poolings row
reuses the main comparison's runs with the seeds listed in `ablation_seeds`.
"""),
code("""
t0 = time.perf_counter()
abl_seeds = tuple(CFG["ablation_seeds"])
abl_runs = {"both, 7x7": al.SeedRuns("both, 7x7",
                                     [h for h in sg_runs.histories if h.seed in abl_seeds])}
for name, kw in CFG["ablations"].items():
    abl_runs[name] = al.run_seeds(lambda kw=kw: al.ResNetBackbone(attention=al.spatial_gate(**kw)),
                                  train, test, seeds=abl_seeds, label=name,
                                  eval_every_epoch=False, **FIT)
print(f"ablation took {time.perf_counter() - t0:.0f} s")
ref = abl_runs["both, 7x7"]
if len(abl_seeds) > 1:
    def abl_verdict(r):
        return verdict(ref.mean, ref.std, r.mean, r.std)
    noise_src = f"pooled std of the {len(abl_seeds)} ablation seeds"
else:   # one seed per variant: borrow the seed std of the main comparison's gated model
    def abl_verdict(r):
        return verdict(ref.mean, sg_runs.std, r.mean, sg_runs.std)
    noise_src = f"std of +SG 7x7 over the {len(CFG['seeds'])} main seeds ({sg_runs.std:.4f})"
print(f"noise: 2 x {noise_src}")
print(f"{'variant':>10} {'accuracy (mean ± std)':>24} {'vs both, 7x7':>13}  verdict "
      f"(seeds {abl_seeds})")
for name, r in abl_runs.items():
    d, nz, wd = abl_verdict(r)
    print(f"{name:>10} {r.mean:>15.4f} ± {r.std:.4f} {d:>+13.4f}  " + ("(reference)" if r is ref else wd))
print(f"baseline (same seeds): "
      f"{np.mean([h.final_test_acc for h in base_runs.histories if h.seed in abl_seeds]):.4f}")
best = max(abl_runs, key=lambda n: abl_runs[n].mean)
fig = viz.bar_errors(list(abl_runs), [r.mean for r in abl_runs.values()],
                     [r.std for r in abl_runs.values()], points=[r.accs for r in abl_runs.values()],
                     ylim=(0.0, 1.0), title="spatial-gate ablation: test accuracy")
"""),
code("""
beyond = [n for n, r in abl_runs.items() if r is not ref
          and abl_verdict(r)[2] == "beyond the seed noise"]
print(f"Paper (ImageNet, ResNet-50 + channel module): avg & max pooling with a 7x7 kernel is best.")
print(f"Ours: the highest mean is '{best}'. Variants whose difference to 'both, 7x7' is beyond the "
      f"seed noise: {beyond if beyond else 'none'}.")
if best == "both, 7x7" and len(beyond) == len(abl_runs) - 1:
    print("Verdict: our small setting agrees with the paper's choice, and the differences are beyond the noise.")
elif not beyond:
    print("Verdict: our setting cannot separate the variants: every difference is within the seed noise, "
          "so it neither confirms nor contradicts the paper's choice.")
else:
    print("Verdict: partly separable here; only the variants listed above differ from 'both, 7x7' "
          "beyond the noise — read their signs in the table.")
"""),
md("""
With one or two seeds per variant the noise estimate is rough, and the paper's own
differences are small at ImageNet scale, so a "within the noise" verdict here would not be a
surprise; the `gpu` profile runs three seeds per variant and three more variants.

## 9. Look inside: where do the two networks look?

Two kinds of maps, for every seed's trained model:

- **Grad-CAM** on the output of the last stage (5×5), for the true class (so that a wrong
  prediction does not change which class is explained), for the baseline and the gated model;
- the **gate's own maps** $\\mathbf{M}$ (`last_map` of each block's `SpatialGate`): block 1
  (stage 1, 20×20), block 2 (stage 2, 10×10) and block 3 (stage 3, 5×5). The baseline has no
  gate; as its counterpart we score the **activation map** of stage 1 — the channel mean of the
  stage's (non-negative) output, i.e. where the features are strong — for both networks.

First, pictures: seed 0's models on eight test images (colours are scaled per image; white box:
ground truth; title: energy in the box for that image).
"""),
code("""
score_set = test.subset(slice(0, CFG["n_score"]))

@torch.no_grad()
def gate_and_activation_maps(model, ds, batch=250):
    # gate maps of every block (empty for the baseline) and the stage-1 activation map
    model.eval()
    gates, act = [[] for _ in model.attention_modules()], []
    for xb in ds.images.split(batch):
        feats = model.features(xb.to(DEVICE))
        act.append(feats["stage1"].float().mean(1).cpu())
        for k, mod in enumerate(model.attention_modules()):
            gates[k].append(mod.last_map.float().cpu())
    return [torch.cat(g) for g in gates], torch.cat(act)

def gradcam_maps(model, ds, batch=250):
    with al.GradCAM(model, model.stages[-1]) as gc:
        return torch.cat([gc(xb.to(DEVICE), yb.to(DEVICE)).cpu()
                          for xb, yb in zip(ds.images.split(batch), ds.labels.split(batch))])

show = score_set.subset(slice(0, 8))
m_base, m_sg = base_runs.models[0], sg_runs.models[0]
rows = [("+SG, gate map of block 1 (20x20)", gate_and_activation_maps(m_sg, show)[0][0]),
        ("+SG, gate map of block 2 (10x10)", gate_and_activation_maps(m_sg, show)[0][1]),
        ("baseline, Grad-CAM (stage 3)", gradcam_maps(m_base, show)),
        ("+SG, Grad-CAM (stage 3)", gradcam_maps(m_sg, show))]
for title, maps in rows:
    e = al.box_energy(maps, show.boxes, 40)
    fig = viz.overlay_attention(show.images, maps, show.boxes, ncols=8, title=title,
                                titles=[f"{v:.2f}" for v in e])
"""),
md("""
Now the numbers, over all `n_score` test images and every seed (mean ± std over seeds of the
per-seed means). The energy gain is relative to the box's area share (1 = uniform map), the
pointing game's chance level is the mean area share, printed on the first line.
"""),
code("""
t0 = time.perf_counter()
scores = {}   # map name -> list over seeds of localisation_scores dicts
def add(name, maps):
    scores.setdefault(name, []).append(al.localisation_scores(maps, score_set.boxes, 40))

gcam = {"baseline": [], "+SG": []}   # stage-3 Grad-CAM maps per seed, reused below
for mb, ms in zip(base_runs.models, sg_runs.models):
    gcam["baseline"].append(gradcam_maps(mb, score_set))
    gcam["+SG"].append(gradcam_maps(ms, score_set))
    add("Grad-CAM, baseline", gcam["baseline"][-1])
    add("Grad-CAM, +SG", gcam["+SG"][-1])
    _, act_b = gate_and_activation_maps(mb, score_set)
    gates_s, act_s = gate_and_activation_maps(ms, score_set)
    add("stage-1 activation, baseline", act_b)
    add("stage-1 activation, +SG", act_s)
    for k, g in enumerate(gates_s):
        add(f"gate map, block {k + 1} ({g.shape[-1]}x{g.shape[-1]})", g)
chance = scores["Grad-CAM, baseline"][0]["chance"]
print(f"{len(score_set)} test images, {len(CFG['seeds'])} seeds; mean box area share (chance) = {chance:.3f}")
print(f"{'map':>32} {'energy':>15} {'energy gain':>15} {'pointing':>15}")
summ = {}
for name, lst in scores.items():
    summ[name] = {key: al.mean_std([s[key] for s in lst]) for key in ("energy", "energy_gain", "pointing")}
    print(f"{name:>32} " + " ".join(f"{summ[name][key][0]:7.3f} ± {summ[name][key][1]:.3f}"
                                    for key in ("energy", "energy_gain", "pointing")))
print(f"(scoring took {time.perf_counter() - t0:.1f} s)")
"""),
code("""
for key, label in (("energy_gain", "energy gain"), ("pointing", "pointing game")):
    (mb_, sb_), (ms_, ss_) = summ["Grad-CAM, baseline"][key], summ["Grad-CAM, +SG"][key]
    d, nz, wd = verdict(mb_, sb_, ms_, ss_)
    print(f"Grad-CAM {label}: +SG minus baseline = {d:+.3f} (2 x pooled std {nz:.3f}) -> {wd}")
for name in [n for n in summ if n.startswith("gate map")]:
    gains = [s["energy_gain"] for s in scores[name]]
    hits = [s["pointing"] for s in scores[name]]
    above = all(g > 1 for g in gains)
    print(f"{name}: energy gain above 1 (chance) in {sum(g > 1 for g in gains)} of {len(gains)} seeds; "
          f"pointing {np.mean(hits):.3f} vs chance {chance:.3f}")
"""),
md("""
How to read these lines. A sigmoid gate never reaches 0, so its map has mass everywhere and its
energy in the box is pulled towards the area share even when its peak is on the digit; the
pointing game is the fairer test for it, and a gain only slightly above 1 can still come with a
high hit rate. The verdicts compare Grad-CAM maps of the two networks against seed noise; the
gate lines say, seed by seed, whether the gate's own map beats a uniform map. The CBAM paper
shows Grad-CAM pictures in which networks with CBAM (channel *and* spatial gates, on ImageNet)
cover the target objects better than their baselines; it gives no localisation number for the
spatial gate alone, so the printed verdict is our only quantitative evidence either way.

### Where does a feature cell sit in the image?

Every score above first upsamples a coarse map to 40×40, and that needs a rule for *where* cell
$i$ of a map downsampled $s$ times sits in the image. The rule of image resizing
(`F.interpolate(..., align_corners=False)`, `anchor="centre"` in `attn_lesson.maps.upsample`)
puts it at coordinate $s(i+\\tfrac12)$, the centre of the $s\\times s$ block of pixels it
replaces. Our network downsamples with 3×3 convolutions of stride 2 and padding 1, which centre
output cell $i$ on input pixel $2i$; composed over the stem, stage 2 and stage 3, cell $i$ of a
stride-$s$ map is centred on pixel $s\\,i$ (coordinate $s\\,i+\\tfrac12$). That is the rule
`attn_lesson` uses by default (`anchor="stride"`), in the scores above and in the overlays.
We check it: for the central cell of each stage we measure where it actually looks, as the
centroid of the magnitude of its gradient with respect to the input. Where a cell looks comes
from strides and paddings, not from learning, so an untrained network will do.
"""),
code("""
al.seed_everything(0)
probe_net = al.ResNetBackbone().eval()
x_probe = torch.rand(1, 1, 40, 40, requires_grad=True)
feats_p = probe_net.features(x_probe)
pos = torch.arange(40.0) + 0.5                             # pixel centres
err = {"centre": {}, "stride": {}}
for st in ("stage1", "stage2", "stage3"):
    n = feats_p[st].shape[-1]
    i, s = n // 2, 40 // n
    g, = torch.autograd.grad(feats_p[st][0, :, i, i].sum(), x_probe, retain_graph=True)
    wgt = g.abs()[0, 0]
    cx = ((wgt.sum(0) * pos).sum() / wgt.sum()).item()
    cy = ((wgt.sum(1) * pos).sum() / wgt.sum()).item()
    looks = (cx + cy) / 2
    err["centre"][st] = (i + 0.5) * s - looks
    err["stride"][st] = (s * i + 0.5) - looks
    print(f"{st} ({n}x{n}): cell {i} looks at ({cx:.1f}, {cy:.1f}); resize rule puts it at "
          f"{(i + 0.5) * s:.1f} (off by {err['centre'][st]:+.1f} px), stride rule at "
          f"{s * i + 0.5:.1f} (off by {err['stride'][st]:+.1f} px)")
assert all(abs(err["stride"][st]) < abs(err["centre"][st]) for st in err["stride"]), \\
    "the stride rule should place every stage's cells closer to where they look"
"""),
md("""
The stride rule is the closer one at every stage (asserted above), and the resize rule's error
grows with the stride. How much does the choice matter for the localisation scores? We re-score
the same stage-3 Grad-CAM maps with the resize rule and put the result beside the numbers above.
"""),
code("""
misplaced = {}
print("stage-3 Grad-CAM; mean ± std over seeds")
print(f"{'':>10} {'gain, stride':>15} {'gain, resize':>15} {'pointing, stride':>17} {'pointing, resize':>17}")
for name, maps_list in gcam.items():
    after = [al.localisation_scores(g, score_set.boxes, 40, anchor="centre") for g in maps_list]
    misplaced[name] = {key: al.mean_std([a[key] for a in after]) for key in ("energy_gain", "pointing")}
    b_ = summ[f"Grad-CAM, {name}"]
    print(f"{name:>10} " + " ".join(f"{v[0]:8.3f} ± {v[1]:.3f}" for v in
          (b_["energy_gain"], misplaced[name]["energy_gain"], b_["pointing"], misplaced[name]["pointing"])))
for key in ("energy_gain", "pointing"):
    d, nz, wd = verdict(*misplaced["baseline"][key], *misplaced["+SG"][key])
    print(f"with the resize rule, {key}: +SG minus baseline = {d:+.3f} (2 x pooled std {nz:.3f}) -> {wd}")
"""),
md("""
Whether the misplaced maps score lower, and whether the comparison between the two networks
changes with the rule, is what the table says. The lesson carries over to every later chapter: a
coarse map is evidence about *where* only after its cells are placed where they actually look.

## Exercises

**Exercise 1.** Compute Grad-CAM at the output of stage 2 (10×10) instead of stage 3 for the
baseline models. Is the CAM identity of section 6 still true there? Do the finer maps score
better?

<details>
<summary>Solution</summary>

```python
def gradcam_at(model, layer, ds):
    with al.GradCAM(model, layer) as gc:
        return gc(ds.images.to(DEVICE), ds.labels.to(DEVICE)).cpu()

for m in base_runs.models:
    s2 = al.localisation_scores(gradcam_at(m, m.stages[1], score_set), score_set.boxes, 40)
    s3 = al.localisation_scores(gradcam_at(m, m.stages[2], score_set), score_set.boxes, 40)
    print(f"stage 2: gain {s2['energy_gain']:.2f}, pointing {s2['pointing']:.2f} | "
          f"stage 3: gain {s3['energy_gain']:.2f}, pointing {s3['pointing']:.2f}")
```

At stage 2 the gradient $\\partial y^c/\\partial A^k_{ij}$ passes through stage 3's convolutions,
so it differs between positions and $\\alpha^c_k$ is a genuine average: the identity with CAM
holds only where GAP and the linear layer directly follow the hooked layer. Whether the finer
maps score better is what the printed numbers say; finer maps can localise more sharply but
are often noisier.

</details>

**Exercise 2.** The paper's alternative to channel pooling is a *learned* 1×1 convolution that
reduces $C$ channels to one descriptor. Write that gate and plug it into the backbone.

<details>
<summary>Solution</summary>

```python
class ConvReduceGate(nn.Module):
    def __init__(self, channels, k=7):
        super().__init__()
        self.reduce = nn.Conv2d(channels, 1, 1)            # learned channel summary
        self.conv = nn.Conv2d(1, 1, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
    def forward(self, x):
        return x * torch.sigmoid(self.bn(self.conv(self.reduce(x))))

runs_conv = al.run_seeds(lambda: al.ResNetBackbone(attention=ConvReduceGate), train, test,
                         seeds=CFG["ablation_seeds"], label="1x1 conv, 7x7", **FIT)
print(runs_conv, "|", abl_runs["both, 7x7"])
```

It has $C+1$ more parameters per gate than the pooling version. Compare the two with the
`verdict` function of section 7.

</details>

**Exercise 3.** The pointing game with `tolerance=0` is strict: a peak one pixel outside the
box counts as a miss. Re-score the gate maps of block 1 with `tolerance=2` and `tolerance=4`
(the grown box's chance level grows too — compute it).

<details>
<summary>Solution</summary>

```python
g1 = gate_and_activation_maps(sg_runs.models[0], score_set)[0][0]
for tol in (0, 2, 4):
    hit = al.pointing_game(g1, score_set.boxes, 40, tolerance=tol).mean().item()
    grown = score_set.boxes + torch.tensor([-tol, -tol, tol, tol])
    chance_tol = al.box_area_fraction(grown.clamp(0, 40), 40).mean().item()
    print(f"tolerance {tol}: hit rate {hit:.3f}, chance {chance_tol:.3f}")
```

A tolerance raises both the hit rate and its chance level; only the gap between them is
evidence of localisation.

</details>

**Exercise 4.** Switch off the gate's batch norm (`al.spatial_gate(7, norm=False)`) and
retrain. Look at the first epoch's accuracy and at the mean value of the block-1 map: what does
the BN do to the gate's operating point?

<details>
<summary>Solution</summary>

```python
runs_nobn = al.run_seeds(lambda: al.ResNetBackbone(attention=al.spatial_gate(7, norm=False)),
                         train, test, seeds=CFG["ablation_seeds"], label="no BN", **FIT)
print(runs_nobn)
for r in (abl_runs["both, 7x7"], runs_nobn):
    print(r.label, "epoch-1 accuracy:", [round(h.test_acc[0], 3) for h in r.histories])
g = gate_and_activation_maps(runs_nobn.models[0], score_set)[0][0]
print("mean block-1 gate without BN:", g.mean().item())
```

Without BN the conv's output scale depends on the feature scale, so the sigmoid can start
saturated (gates near 0 or 1) or near 0.5; the BN standardises the logits so that the gate
starts in the sigmoid's sensitive range.

</details>

## Summary

- CBAM's spatial gate pools **across channels** (average and max), convolves the two maps with a
  $k\\times k$ kernel, applies BN and a sigmoid, and multiplies every channel by the resulting map
  $\\mathbf{M}\\in(0,1)^{1\\times H\\times W}$; our step-by-step build equals `al.SpatialGate`.
- It costs $2k^2+2$ parameters per block (100 for $k=7$) and $4k^2HW$ FLOPs; its latency can
  grow faster than its FLOPs (section 4 prints whether it did here).
- Grad-CAM weighs a layer's channels by the spatial mean of the class score's gradient; with
  hooks it takes a dozen lines, equals `al.GradCAM`, and on a layer followed by GAP and a linear
  layer it equals CAM exactly.
- The localisation score — energy in the box against the box's area share, and the pointing
  game — makes maps comparable; later chapters (CBAM, BAM, LTPA, STN, RAM, ViT) reuse it.
- Whether the gate helped accuracy, whether it changed where Grad-CAM looks, and whether both
  poolings and a 7×7 kernel beat the alternatives here are stated by the verdict lines above,
  computed from this run.

References: see the [bibliography](../book/bibliography.md).
"""),
code("""
print(f"notebook compute time: {time.perf_counter() - T_START:.0f} s")
"""),
]

if __name__ == "__main__":
    print(save(cells, NAME))
