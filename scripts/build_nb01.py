"""Build notebooks/01_what_is_attention.ipynb (chapter 1, "What attention is in vision").

Run from anywhere:  python scripts/build_nb01.py
The notebook is written without outputs; the book build (and nbval) executes it.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbtools import SETUP as NB_SETUP, badge

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "01_what_is_attention.ipynb"

cells = []


def md(text: str) -> None:
    cells.append(new_markdown_cell(textwrap.dedent(text).strip("\n")))


def code(text: str) -> None:
    cells.append(new_code_cell(textwrap.dedent(text).strip("\n")))


# ----------------------------------------------------------------------------- 1. title
md(r"""
# 1. What attention is in vision

A cluttered image holds far more than any one task needs: to read a digit, the pixels of the
digit matter and the scraps around it mostly do not. An *attention mechanism* is the part of a
network that decides, separately for every input, what to emphasise and what to damp. The
later chapters of this book cover more than a dozen such mechanisms with different names,
but they share one pattern: compute weights from the input, then apply them to the input or
to features derived from it. This chapter sorts that pattern into a small taxonomy: which
axis is weighted (channels, positions, both, time), how the weights are normalised (sigmoid
gate or softmax distribution), whether selection is soft or hard, where the weights act
(input or features), and where they come from (a separate scorer, another branch, or the
features themselves). No model is trained here. Every weight is made by hand, so we can see
what each kind of weighting does before a network has to learn one.

**Learning goals.** After this chapter you can

- write the general form $\mathbf{Y} = g(\mathbf{X}) \otimes \mathbf{X}$ and give the shape
  of the weights for spatial, channel, mixed and temporal attention;
- explain the difference between a sigmoid gate and a softmax distribution, and what a
  softmax temperature does;
- tell soft from hard attention, and explain why hard attention needs a gradient estimator
  such as REINFORCE;
- say whether a mechanism weights the input or the features, and why the two differ;
- describe Mask R-CNN's per-class masks as a way of decoupling *what* from *where*;
- follow the route from a separate scoring network to self-attention with queries, keys and
  values, and place every later chapter on the map.

**Expected runtime.** CPU: 11–18 s for the whole notebook, kernel start included
(measured on a 2-core machine). GPU: about the same; nothing here is heavy enough to
benefit from one.

""" + badge(OUT.name))

# ----------------------------------------------------------------------------- 2. setup
code(NB_SETUP + r'''
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import attn_lesson as al

PROFILE = al.get_profile()
al.seed_everything(0)
print(al.env_report(PROFILE))
''')

code(r'''
import math

from attn_lesson import viz  # plotting helpers: show_images, overlay_attention, heatmap_grid

# Sizes used in this chapter. They are the same on both profiles: nothing here is heavy.
N_IMAGES = PROFILE.pick(cpu=64, gpu=64)      # Cluttered Digits images to render
N_MC = PROFILE.pick(cpu=20_000, gpu=20_000)  # Monte Carlo samples in the hard-attention check
GRID = 4                                     # the glimpse demo cuts an image into GRID x GRID patches
print(f"profile={PROFILE.name}: N_IMAGES={N_IMAGES}, N_MC={N_MC}, GRID={GRID}")
''')

# ----------------------------------------------------------------------------- 1.1 intuition
md(r"""
## 1.1 Attention is a learned, input-dependent weighting

**Human visual attention.** Our eyes see fine detail only in a small central region (the
fovea), so we move them and process a few regions of a scene carefully while the rest is
seen only coarsely. Itti, Koch and Niebur {cite}`itti1998saliency` built a classic computational
model of the *bottom-up* part of this. It computes feature maps for intensity, colour
opponency and orientation at several scales, takes centre–surround differences, normalises
them and adds them up into one *saliency map*. A winner-take-all network then picks the most
salient location as the focus of attention, and "inhibition of return" suppresses that
location so the focus can move to the next one. The saliency map is computed from the
image, so it is input dependent, but every rule in the model was designed by hand.

**Attention in deep networks** keeps the first property and replaces the second. In this book
an attention mechanism produces weights that are

1. **input dependent**: recomputed for every image. A convolution kernel, or the scale
   $\gamma$ of a batch-norm layer, is also a weight, but after training it is the same for
   every input;
2. **learned**: the function that computes them is a small network trained end to end with
   the task loss. No saliency rules are written by hand.

Guo et al.'s survey {cite}`guo2022survey` writes the common pattern as

$$
\mathrm{Attention} = f\big(g(\mathbf{X}),\, \mathbf{X}\big),
$$

where $g$ *generates* the attention (the weights) and $f$ *processes* the input according to
them. In most modules of this book $f$ is a broadcast product:

$$
\mathbf{Y} = g(\mathbf{X}) \otimes \mathbf{X}, \qquad \mathbf{X}, \mathbf{Y} \in \mathbb{R}^{C\times H\times W}.
$$

The **shape** of $g(\mathbf{X})$ tells you the **domain** of the attention:

| domain | weights | shape (one image) | what it decides |
|---|---|---|---|
| channel | $\mathbf{s}$ | $C\times 1\times 1$ | *which* features matter |
| spatial | $\mathbf{M}$ | $1\times H\times W$ | *where* to look |
| mixed (channel & spatial) | $\mathbf{s}$ then $\mathbf{M}$, or one $C\times H\times W$ map | up to $C\times H\times W$ | both |
| temporal | one weight per frame | $T$ | *when* (which frames of a video) |

Guo et al. sort vision attention into four basic kinds (channel, spatial, temporal and
*branch* attention, which weighs parallel branches such as kernels of different sizes) and
two hybrids (channel & spatial, spatial & temporal). This book works with still images, so
temporal attention appears only in a loose sense: in Part V a model attends to a different
place at each step of a sequence it produces.

Before any equations, here is the data used in every demo below: Cluttered Digits, a
handwritten digit placed among fragments of other digits. The red box is the digit's
ground-truth bounding box.
""")

code(r'''
ds = al.cluttered_digits(N_IMAGES, "test", seed=0)
x = ds.images                      # (B, 1, H, W), values in [0, 1]
B, C, H, W = x.shape
print(ds)
print("images", tuple(x.shape), "| boxes", tuple(ds.boxes.shape), "| digit masks", tuple(ds.masks.shape))
fig = viz.show_images(x[:16], labels=ds.labels[:16], boxes=ds.boxes[:16], ncols=8,
                      title="Cluttered Digits: the digit (red box) among clutter")
plt.show()
''')

# ----------------------------------------------------------------------------- 1.2 spatial
md(r"""
## 1.2 Spatial attention by hand: a mask on the image

A spatial map $\mathbf{M}\in\mathbb{R}^{1\times H\times W}$ gives one weight per position,
and the same weight is shared by all channels:

$$
\mathbf{Y} = \mathbf{M} \otimes \mathbf{X}, \qquad Y_{c,v,u} = M_{v,u}\, X_{c,v,u}.
$$

A network has to *learn* to produce $\mathbf{M}$ from $\mathbf{X}$. Here we cheat and build
it from the ground truth, to see what a good map would do. For each image we place a soft
Gaussian blob on the centre $(c_x, c_y)$ of the digit's box, with a width of half the box
size in each direction ($\sigma_x = w_{\text{box}}/2$, $\sigma_y = h_{\text{box}}/2$):

$$
M_{v,u} = \exp\!\Big(-\frac{(u-c_x)^2}{2\sigma_x^2} - \frac{(v-c_y)^2}{2\sigma_y^2}\Big) \in (0, 1].
$$

To measure the effect we use the **energy share inside the box**: the fraction of the
image's energy $\sum X^2$ that lies inside the ground-truth box,

$$
E_{\text{box}}(\mathbf{X}) = \frac{\sum_{(v,u)\in\text{box}} \sum_c X_{c,v,u}^2}{\sum_{v,u} \sum_c X_{c,v,u}^2}.
$$

If the mask does its job, $E_{\text{box}}(\mathbf{M}\otimes\mathbf{X})$ is larger than
$E_{\text{box}}(\mathbf{X})$. We also measure the same share for the digit's own pixels
(`ds.masks`), which excludes clutter that happens to fall inside the box.
""")

code(r'''
def box_region(boxes, h, w):
    """Boolean (B, 1, h, w): True inside each (x0, y0, x1, y1) box (x1, y1 exclusive)."""
    x0, y0, x1, y1 = (t.view(-1, 1, 1) for t in boxes.unbind(1))
    u = torch.arange(w).view(1, 1, w)
    v = torch.arange(h).view(1, h, 1)
    return ((u >= x0) & (u < x1) & (v >= y0) & (v < y1)).unsqueeze(1)


def gaussian_box_mask(boxes, h, w, width=0.5):
    """Soft spatial map M of shape (B, 1, h, w): a Gaussian on each box centre.

    sigma is `width` times the box side in each direction (0.5: half the box)."""
    x0, y0, x1, y1 = (t.view(-1, 1, 1) for t in boxes.unbind(1))
    u = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    v = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    cx, cy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5   # pixel centres sit at integer coordinates
    sx, sy = width * (x1 - x0), width * (y1 - y0)
    return torch.exp(-(u - cx) ** 2 / (2 * sx ** 2) - (v - cy) ** 2 / (2 * sy ** 2)).unsqueeze(1)


def energy_share(img, region):
    """Per image: fraction of sum(img**2) (over channels and positions) inside `region`."""
    e = img.pow(2).sum(1, keepdim=True)          # (B, 1, H, W) energy per position
    return (e * region).sum((1, 2, 3)) / e.sum((1, 2, 3))


M = gaussian_box_mask(ds.boxes, H, W)            # (B, 1, H, W)
y = M * x                                        # broadcast over the channel axis
assert M.shape == (B, 1, H, W) and y.shape == x.shape

inside = box_region(ds.boxes, H, W)
digit = ds.masks.unsqueeze(1)                    # (B, 1, H, W) the digit's own pixels
box_before, box_after = energy_share(x, inside), energy_share(y, inside)
dig_before, dig_after = energy_share(x, digit), energy_share(y, digit)
print(f"box covers on average {inside.float().mean():.1%} of the image area")
print(f"energy share inside the box   : {box_before.mean():.3f} -> {box_after.mean():.3f} (mean over {B} images)")
print(f"energy share on digit pixels  : {dig_before.mean():.3f} -> {dig_after.mean():.3f}")
print(f"images where the box share rose: {(box_after > box_before).sum().item()} of {B}")
''')

code(r'''
# three examples: image | mask M | masked image M * x (the red box is the ground truth)
idx = [0, 1, 2]
panels = torch.stack([t for i in idx for t in (x[i], M[i], y[i])])
fig = viz.show_images(panels, boxes=ds.boxes[idx].repeat_interleave(3, dim=0), ncols=3, size=1.9,
                      title="image  |  mask M  |  M ⊗ X")
plt.show()
''')

code(r'''
# the claims of this section, checked
assert box_after.mean() > box_before.mean() + 0.2, "the mask should concentrate energy in the box"
assert bool((box_after > box_before).all()), "on these images the mask raises the box share every time"
assert dig_after.mean() > dig_before.mean()
''')

md(r"""
Before masking, only about half of the image's energy lies inside the digit's box; the rest is
clutter. After multiplying by the mask, most of the energy is inside the box, and the share
on the digit's own pixels rises by a similar amount. Two things to keep in mind:

- The mask only **damps**, it never adds: $M\le 1$, so every pixel keeps at most its
  original value. Clutter is not deleted, only weakened, and so is the digit's outer ink (a
  Gaussian on the box centre is about $e^{-1}\approx 0.37$ at the box corners).
- This mask is an **oracle**: it was built from the ground-truth box. A spatial attention
  module has to compute something like it from the image alone. Whether it learns to do so
  is an experimental question, and Part III measures it with this kind of number.
""")

# ----------------------------------------------------------------------------- 1.3 channel
md(r"""
## 1.3 Channel attention by hand: re-weighting colours

Channel attention gives one weight per channel, $\mathbf{s}\in\mathbb{R}^{C}$, and scales
each channel as a whole:

$$
\mathbf{Y} = \mathbf{s} \otimes \mathbf{X}, \qquad Y_{c,v,u} = s_c\, X_{c,v,u}.
$$

It decides *which* features matter but has no say about *where*: $s_c$ is the same at
every position. In a CNN the channels of a feature map are learned detectors. In the input
image they are just colours, which makes them easy to look at. With `colour=True` every digit
and every clutter fragment gets its own random colour, so a colour image is a map with
$C=3$ channels.

Our hand-made gate again uses the ground truth. For each image we compute the digit's mean
colour $\bar{\mathbf{x}}_{\text{digit}}\in\mathbb{R}^3$ (over the digit mask) and the
clutter's mean colour $\bar{\mathbf{x}}_{\text{clutter}}$ (over the other ink pixels), and set

$$
\mathbf{s} = \sigma\big(\beta\,(\bar{\mathbf{x}}_{\text{digit}} - \bar{\mathbf{x}}_{\text{clutter}})\big), \qquad \beta = 10,
$$

so a channel in which the digit is brighter than the clutter is passed ($s_c \to 1$) and
a channel dominated by clutter is damped ($s_c \to 0$). This is a sigmoid gate, the same
form that SENet and its relatives use; the difference is that they compute the argument of
the sigmoid with a small learned network.
""")

code(r'''
dc = al.cluttered_digits(N_IMAGES, "test", seed=0, colour=True)
xc, dmask = dc.images, dc.masks                    # (B, 3, H, W), (B, H, W)
ink = xc.amax(1) > 0.1                             # any visible ink
clutter = ink & ~dmask

def mean_colour(img, region):                      # (B, 3): mean colour over a boolean (B, H, W) region
    r = region.unsqueeze(1).float()
    return (img * r).sum((2, 3)) / r.sum((2, 3)).clamp(min=1)

BETA = 10.0
s = torch.sigmoid(BETA * (mean_colour(xc, dmask) - mean_colour(xc, clutter)))  # (B, 3)
yc = s.view(-1, 3, 1, 1) * xc                      # reshape (B, C) -> (B, C, 1, 1) to broadcast
assert s.shape == (len(dc), 3) and yc.shape == xc.shape

col_before = energy_share(xc, dmask.unsqueeze(1))
col_after = energy_share(yc, dmask.unsqueeze(1))
gain = col_after - col_before
print(f"energy share on digit pixels: {col_before.mean():.3f} -> {col_after.mean():.3f} (mean over {len(dc)} images)")
print(f"per-image change: smallest {gain.min():+.4f}, largest {gain.max():+.3f}")
''')

code(r'''
# the image with the largest gain: its channels, the gate s, and the gated image
i = int(gain.argmax())
fig, axes = plt.subplots(1, 6, figsize=(13, 2.4))
axes[0].imshow(xc[i].permute(1, 2, 0).clamp(0, 1)); axes[0].set_title("colour image")
for c, name in enumerate("RGB"):
    axes[1 + c].imshow(xc[i, c], cmap="gray", vmin=0, vmax=1); axes[1 + c].set_title(f"channel {name}")
axes[4].bar(list("RGB"), s[i].tolist(), color=["tab:red", "tab:green", "tab:blue"])
axes[4].set_ylim(0, 1); axes[4].set_title("gate s")
axes[5].imshow(yc[i].permute(1, 2, 0).clamp(0, 1)); axes[5].set_title("s ⊗ X")
for ax in axes[[0, 1, 2, 3, 5]]:
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()
plt.show()
print("gate s =", [round(v, 3) for v in s[i].tolist()],
      f"| digit share {col_before[i]:.3f} -> {col_after[i]:.3f}")
''')

code(r'''
assert col_after.mean() > col_before.mean()
assert gain.max() > 10 * gain.min(), "the benefit varies a lot from image to image"
''')

md(r"""
The gate raises the digit's energy share on average, but much less than the spatial mask
did, and by very different amounts from image to image (compare the smallest and largest
change printed above). That is the nature of a channel gate: it can suppress a colour, but
only everywhere at once. When a clutter fragment happens to have a colour close to the
digit's, no choice of $\mathbf{s}$ separates them; only a spatial map can. This is one reason
why *mixed* modules such as CBAM and BAM combine both kinds of weights.
""")

# ----------------------------------------------------------------------------- 1.4 normalisation
md(r"""
## 1.4 How weights are normalised: sigmoid gates and softmax distributions

A module first computes unnormalised **scores** $\mathbf{z}$ (one per channel, position,
branch, …) and then turns them into weights. Two choices dominate, and they mean different
things:

- **Sigmoid gate**, $a_i = \sigma(z_i) = 1/(1+e^{-z_i}) \in (0,1)$. Each weight is
  independent of the others: a gate that opens position $i$ says nothing about position $j$.
  The weights do not have to sum to anything. SENet, ECA-Net, CBAM and BAM use gates.
- **Softmax distribution**, $a_i = e^{z_i/T} / \sum_j e^{z_j/T}$ with temperature $T>0$. The
  weights are positive and sum to 1, so they form a probability distribution: the positions
  *compete*, and raising one weight lowers all the others. Adding the same constant to every
  score changes nothing. Used with a weighted sum $\sum_i a_i \mathbf{v}_i$, a softmax gives a
  *weighted average*. SKNet (over branches), Learn to Pay Attention (over positions) and all
  self-attention use softmax.

The temperature controls how sharp the distribution is. Its **entropy**
$\mathcal{H}(\mathbf{a}) = -\sum_i a_i \log a_i$ goes from 0 (all the weight on the top score,
as $T\to 0$) to $\log N$ (uniform over $N$ items, as $T\to\infty$).
""")

code(r'''
z = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, -2.0])   # scores for N = 8 positions
soft, gate = torch.softmax(z, 0), torch.sigmoid(z)
print("softmax:", [round(v, 3) for v in soft.tolist()], f"sum = {soft.sum():.4f}")
print("sigmoid:", [round(v, 3) for v in gate.tolist()], f"sum = {gate.sum():.4f}")

# competition: raise the score of position 3 by 3 and see what happens to the others
z2 = z.clone(); z2[3] += 3.0
others = torch.arange(len(z)) != 3
print(f"after raising z[3]: softmax of the other positions changed by at most "
      f"{(torch.softmax(z2, 0) - soft)[others].abs().max():.3f}; sigmoid by "
      f"{(torch.sigmoid(z2) - gate)[others].abs().max():.3f}")

def entropy(p):
    return -(p * p.clamp_min(1e-30).log()).sum(-1)

temps = torch.logspace(-2, 2, 60)
ent = torch.stack([entropy(torch.softmax(z / t, 0)) for t in temps])

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
pos = torch.arange(len(z))
axes[0].bar(pos - 0.2, soft, width=0.4, label="softmax (sums to 1)")
axes[0].bar(pos + 0.2, gate, width=0.4, label="sigmoid (each in (0, 1))")
axes[0].set_xlabel("position i"); axes[0].set_ylabel("weight"); axes[0].legend(fontsize=8)
axes[0].set_title("the same scores, two normalisations")
axes[1].semilogx(temps, ent, label="entropy of softmax(z / T)")
axes[1].axhline(math.log(len(z)), color="gray", ls="--", label="log N (uniform)")
axes[1].set_xlabel("temperature T"); axes[1].set_ylabel("entropy (nats)"); axes[1].legend(fontsize=8)
axes[1].set_title("temperature controls sharpness")
fig.tight_layout()
plt.show()
print(f"entropy at T={temps[0]:.2f}: {ent[0]:.4f} nats; at T={temps[-1]:.0f}: {ent[-1]:.4f} nats; log N = {math.log(len(z)):.4f}")
''')

code(r'''
assert torch.isclose(soft.sum(), torch.tensor(1.0))                        # a distribution
assert bool(((gate > 0) & (gate < 1)).all()) and abs(gate.sum().item() - 1) > 0.5  # independent gates
assert torch.allclose(torch.softmax(z + 3.0, 0), soft)                      # shift invariant ...
assert not torch.allclose(torch.sigmoid(z + 3.0), gate)                     # ... a gate is not
assert bool((torch.softmax(z2, 0)[others] < soft[others]).all())            # competition
assert torch.allclose(torch.sigmoid(z2)[others], gate[others])              # no competition
assert bool((ent[1:] >= ent[:-1] - 1e-6).all())                             # entropy grows with T
assert ent[0] < 1e-3 and ent[-1] > 0.99 * math.log(len(z))
''')

# ----------------------------------------------------------------------------- 1.5 soft vs hard
md(r"""
## 1.5 Soft and hard attention

Take one image and cut it into a $4\times 4$ grid of $10\times 10$ patches, the
*glimpses* $\mathbf{v}_1,\dots,\mathbf{v}_{16}\in\mathbb{R}^{100}$. A scorer assigns each
glimpse a score $z_i$, and a softmax turns the scores into a distribution
$\boldsymbol{\alpha}$ over glimpses. There are two ways to use it:

- **Soft attention** takes the expectation, a weighted average of all glimpses:
  $$\mathbf{g}_{\text{soft}} = \sum_{i} \alpha_i \mathbf{v}_i = \mathbb{E}_{i\sim\boldsymbol{\alpha}}[\mathbf{v}_i].$$
  It is a differentiable function of the scores, so ordinary backpropagation trains the
  scorer.
- **Hard attention** *samples* one glimpse, $i \sim \mathrm{Categorical}(\boldsymbol{\alpha})$,
  and uses $\mathbf{g}_{\text{hard}} = \mathbf{v}_i$. Only the chosen glimpse is processed,
  which is cheap for large images. The sample, however, is an integer: there is no gradient
  from $\mathbf{v}_i$ back to $\boldsymbol{\alpha}$.

To train the scorer of a hard-attention model we need the gradient of an *expected* reward
$\mathbb{E}_{i\sim\boldsymbol{\alpha}}[r(\mathbf{v}_i)]$. The **REINFORCE** (score-function)
identity gives it without differentiating through the sample:

$$
\nabla_\theta\, \mathbb{E}_{i\sim\boldsymbol{\alpha}_\theta}\big[r_i\big]
= \mathbb{E}_{i\sim\boldsymbol{\alpha}_\theta}\big[r_i\, \nabla_\theta \log \alpha_{\theta,i}\big]
\approx \frac{1}{S}\sum_{s=1}^{S} r_{i_s}\, \nabla_\theta \log \alpha_{\theta, i_s}.
$$

The estimate is unbiased but noisy. The Recurrent Attention Model {cite}`mnih2014ram` (Part V)
trains its glimpse policy this way; Show, Attend and Tell {cite}`xu2015show` tried both a soft
and a hard (sampled) variant.

Our scorer has a single parameter $\theta$: $z_i = \theta \cdot \tilde{n}_i$, where
$\tilde{n}_i$ is the standardised amount of ink in patch $i$. It is a crude heuristic. It
likes any ink, digit or clutter.
""")

code(r'''
i0 = 0
img = x[i0, 0]                                             # (H, W)
P = H // GRID                                              # patch side: 10 pixels
patches = img.reshape(GRID, P, GRID, P).permute(0, 2, 1, 3).reshape(GRID * GRID, P * P)  # (16, 100)
assert patches.shape == (GRID * GRID, P * P)

ink_per_patch = patches.sum(1)
n_tilde = (ink_per_patch - ink_per_patch.mean()) / ink_per_patch.std()
theta = torch.tensor(1.5, requires_grad=True)              # the scorer's only parameter
alpha = torch.softmax(theta * n_tilde, 0)                  # (16,) distribution over glimpses

# how much of the attention falls on patches that contain digit pixels?
digit_patch = ds.masks[i0].reshape(GRID, P, GRID, P).permute(0, 2, 1, 3).reshape(GRID * GRID, -1).any(1)
print(f"alpha sums to {alpha.sum().item():.4f}; {digit_patch.sum().item()} of {GRID * GRID} patches hold digit pixels; "
      f"they receive {alpha[digit_patch].sum().item():.3f} of the attention "
      f"(uniform weights would give {digit_patch.float().mean().item():.3f})")

alpha_map = alpha.detach().reshape(GRID, GRID).repeat_interleave(P, 0).repeat_interleave(P, 1)  # (H, W), piecewise constant
fig = viz.overlay_attention(x[i0:i0 + 1], alpha_map[None], boxes=ds.boxes[i0:i0 + 1], ncols=1, size=3,
                            titles=["attention α over 4×4 glimpses"])
plt.show()
''')

code(r'''
g_soft = alpha @ patches                                  # (100,) expected glimpse
reward_soft = g_soft.sum()                                # any differentiable function of the glimpse
reward_soft.backward()
print(f"soft: reward = {reward_soft.item():.3f}, grad_fn = {type(reward_soft.grad_fn).__name__}, "
      f"d reward / d theta = {theta.grad.item():+.4f}")

gen = torch.Generator().manual_seed(0)
k = torch.multinomial(alpha, 1, generator=gen)            # one sampled glimpse index
g_hard = patches[k[0]]
print(f"hard: sampled index = {k.item()} (dtype {k.dtype}), k.grad_fn = {k.grad_fn}, "
      f"g_hard.requires_grad = {g_hard.requires_grad}")
try:
    g_hard.sum().backward()
except RuntimeError as err:
    print("backward through the hard glimpse fails:", str(err).split("\n")[0])

hard_examples = torch.multinomial(alpha.detach(), 7, replacement=True, generator=gen)
fig = viz.show_images(torch.cat([g_soft.detach()[None], patches[hard_examples]]).reshape(-1, 1, P, P),
                      ncols=8, size=1.3, title="soft glimpse (first) vs seven hard samples")
for ax, t in zip(fig.axes, ["soft"] + [f"#{j}" for j in hard_examples.tolist()]):
    ax.set_title(t, fontsize=8)
plt.show()
''')

code(r'''
assert theta.grad is not None and theta.grad.abs() > 0      # soft: the gradient reaches the scorer
assert k.grad_fn is None and not k.requires_grad             # hard: the sample is a plain integer
assert not g_hard.requires_grad
''')

md(r"""
The soft glimpse is a blurry blend of all 16 patches, weighted by $\boldsymbol{\alpha}$; a hard
glimpse is one real patch. The two are linked: the soft glimpse is the *expected value* of
the hard one. A Monte Carlo check follows. We average many hard samples and watch the error
shrink as $1/\sqrt{S}$. Then we check that the REINFORCE estimate, built only from samples
and $\nabla_\theta \log\alpha$, matches the exact gradient that autograd computes for the
soft expectation. The reward is the same as above, $r_i = \sum \mathbf{v}_i$ (the glimpse's
ink).
""")

code(r'''
gen = torch.Generator().manual_seed(1)
samples = torch.multinomial(alpha.detach(), N_MC, replacement=True, generator=gen)   # (S,)
sizes = [10, 100, 1_000, 10_000, N_MC]
errors = [(patches[samples[:n]].mean(0) - g_soft.detach()).abs().max().item() for n in sizes]
for n, e in zip(sizes, errors):
    print(f"S = {n:>6}: max |mean of hard glimpses - soft glimpse| = {e:.4f}")

# REINFORCE estimate of d E[r] / d theta versus the exact gradient
rewards = patches.sum(1)                                  # r_i for each glimpse
alpha = torch.softmax(theta * n_tilde, 0)                 # rebuild the graph (backward above freed it)
exact = torch.autograd.grad((alpha * rewards).sum(), theta, retain_graph=True)[0]
surrogate = (rewards[samples] * torch.log(alpha)[samples]).mean()   # its gradient is the estimator
reinforce = torch.autograd.grad(surrogate, theta)[0]
print(f"exact gradient {exact.item():+.4f} | REINFORCE estimate from {N_MC} samples {reinforce.item():+.4f}")

fig, ax = plt.subplots(figsize=(4.5, 3))
ax.loglog(sizes, errors, "o-", label="max abs error")
ax.loglog(sizes, [errors[0] * (sizes[0] / n) ** 0.5 for n in sizes], "--", color="gray", label="∝ 1/√S")
ax.set_xlabel("number of hard samples S"); ax.set_ylabel("error"); ax.legend(fontsize=8)
ax.set_title("average of hard glimpses → soft glimpse")
fig.tight_layout()
plt.show()
''')

code(r'''
assert errors[-1] < 0.03 and errors[-1] < errors[0] / 10            # MC average approaches the soft expectation
assert abs(reinforce - exact) < 0.1 * abs(exact)                   # REINFORCE within 10 % of the exact gradient
''')

# ----------------------------------------------------------------------------- 1.6 input vs features
md(r"""
## 1.6 Where the weights act: on the input or on features

The masks above act on the **input** image. Most modules in this book act on **features**
instead: a block inside the network computes $\mathbf{M}$ or $\mathbf{s}$ from its own feature
map $\mathbf{X}\in\mathbb{R}^{C\times H\times W}$ and reweights that same map. The two are
not interchangeable:

- On the input, $\mathbf{M}$ has the image's resolution and changes what *every* later layer
  sees. Hard attention (RAM) works here, and the Spatial Transformer often does: they decide
  which pixels are processed at all.
- On features, $\mathbf{M}$ has the feature map's (coarser) resolution. Each feature position
  already summarises a neighbourhood of the image (its receptive field), so the weights select
  *descriptions* of regions, and channel weights can select *kinds* of features. SE, CBAM and
  self-attention work here, usually several times at different depths.

A quick check with the course's backbone (untrained; we only compare operations): masking the
input and then computing stage-2 features is not the same as computing the features and then
masking them with the mask pooled down to their resolution.
""")

code(r'''
torch.manual_seed(0)
net = al.ResNetBackbone(in_channels=1).eval()
with torch.no_grad():
    feats = net.features(x[:8])
    for name, f in feats.items():
        print(f"{name:7s} {tuple(f.shape)}")
    f2 = feats["stage2"]                                         # (8, 32, 10, 10)
    M_small = F.adaptive_avg_pool2d(M[:8], f2.shape[-2:])        # (8, 1, 10, 10): the mask at feature resolution
    on_features = M_small * f2                                   # weights act on features
    on_input = net.features(M[:8] * x[:8])["stage2"]             # weights act on the input
rel = ((on_input - on_features).norm() / on_features.norm()).item()
print(f"mask on input: {tuple(M[:8].shape)}, mask on stage-2 features: {tuple(M_small.shape)}")
print(f"relative difference between the two results: {rel:.2f}")
assert on_input.shape == on_features.shape == f2.shape
assert rel > 0.1, "weighting the input and weighting features are different operations"
''')

# ----------------------------------------------------------------------------- 1.7 Mask R-CNN
md(r"""
## 1.7 Attention as task decoupling: Mask R-CNN's per-class masks

Attention need not come from a dedicated scorer; one branch of a network can select among
the outputs of another. Mask R-CNN {cite}`he2017maskrcnn` does not call it attention, but it
is a clear example of this *selection* view. For each region of interest, the mask branch
predicts $K$ binary masks, one per class, a tensor of shape $K\times m\times m$, each pixel
with its own sigmoid. The classification branch predicts the class. During training only
the mask of the ground-truth class receives a loss, and at inference the class branch's
prediction $\hat{k}$ **picks** one of the $K$ masks. This is hard, one-hot attention over the
$K$ mask channels, driven by another head:

$$
\text{mask} = \sum_{k=1}^{K} \mathbb{1}[k=\hat{k}]\; \mathbf{M}_k .
$$

The effect is to **decouple what from where**. The mask branch only has to answer "which
pixels belong to the object, if it is of class $k$?", and the class branch answers "which
class is it?". The alternative, the usual choice in semantic segmentation, is a per-pixel
softmax across the $K$ classes. There the masks *compete* (as in section 1.4): every class's
logit enters every pixel's loss. In its ablation on COCO (its Table 2b), the Mask R-CNN paper
reports that the decoupled per-class sigmoid masks are much better than a per-pixel softmax
over classes: about 5.5 points of mask AP, by the paper's count.

The code below checks two consequences with random logits: picking by index is the same as
a one-hot weighting of the channels, and with the per-class sigmoid loss the other classes'
masks receive exactly zero gradient, while with the softmax they do not.
""")

code(r'''
torch.manual_seed(0)
R, K, m = 4, 10, 14                                        # regions, classes, mask side
mask_logits = torch.randn(R, K, m, m, requires_grad=True)  # mask branch: K masks per region
class_logits = torch.randn(R, K)                           # classification branch
k_hat = class_logits.argmax(1)                             # (R,) predicted class per region

picked = mask_logits[torch.arange(R), k_hat]                             # (R, m, m) by indexing
one_hot = F.one_hot(k_hat, K).float().view(R, K, 1, 1)                   # hard attention weights
weighted = (one_hot * mask_logits).sum(1)                                # ... as a weighted sum
torch.testing.assert_close(picked, weighted)
print("picked masks:", tuple(picked.shape), "= one-hot weighting of the K mask channels")

# training: the ground-truth class k_gt and a target mask for each region
k_gt = torch.randint(K, (R,))
target = (torch.rand(R, m, m) > 0.5).float()
others = F.one_hot(k_gt, K).bool().logical_not()                        # (R, K): the other classes

loss_sigmoid = F.binary_cross_entropy_with_logits(mask_logits[torch.arange(R), k_gt], target)
g_sig = torch.autograd.grad(loss_sigmoid, mask_logits)[0]
# per-pixel softmax over classes: pixels inside the mask are labelled k_gt, the rest "class 0"
pixel_labels = torch.where(target.bool(), k_gt.view(R, 1, 1), torch.zeros_like(k_gt).view(R, 1, 1))
loss_softmax = F.cross_entropy(mask_logits, pixel_labels)
g_soft = torch.autograd.grad(loss_softmax, mask_logits)[0]
print(f"gradient reaching the other classes' masks: sigmoid (decoupled) {g_sig[others].abs().max():.2e}, "
      f"softmax (coupled) {g_soft[others].abs().max():.2e}")
assert g_sig[others].abs().max() == 0 and g_soft[others].abs().max() > 0
''')

# ----------------------------------------------------------------------------- 1.8 self-attention
md(r"""
## 1.8 The road to self-attention

So far the weights came from a separate scorer (our Gaussian, our colour rule, our ink
heuristic) or from another branch (Mask R-CNN). **Self-attention** computes them from the
features themselves, by comparing every position with every other.

1. **Bahdanau et al.** {cite}`bahdanau2015align` introduced soft attention for machine
   translation. When it emits each output word, the decoder scores every encoder state with a
   small network, applies a softmax over the source positions, and reads the weighted average
   of the encoder states (a soft *alignment*).
2. **Vaswani et al.** {cite}`vaswani2017attention` made the comparison a scaled dot product
   between learned projections of the same sequence, queries
   $\mathbf{Q}=\mathbf{X}\mathbf{W}_Q$, keys $\mathbf{K}=\mathbf{X}\mathbf{W}_K$ and values
   $\mathbf{V}=\mathbf{X}\mathbf{W}_V$, and dropped recurrence altogether:
   $$
   \mathbf{A} = \mathrm{softmax}\!\left(\frac{\mathbf{Q}\mathbf{K}^\top}{\sqrt{d_k}}\right) \in \mathbb{R}^{N\times N},
   \qquad \mathbf{Y} = \mathbf{A}\mathbf{V} \in \mathbb{R}^{N\times d_v}.
   $$
   Row $i$ of $\mathbf{A}$ is a softmax distribution (section 1.4) saying how much position
   $i$ reads from each position $j$.
3. **Non-local networks** {cite}`wang2018nonlocal` brought the same operation into CNNs: the
   $N=HW$ positions of a feature map (or of a video volume) are the sequence, and a residual
   connection adds the result back onto the feature map. SAGAN {cite}`zhang2019sagan` uses the
   same layer in a GAN.
4. **The Vision Transformer** {cite}`dosovitskiy2021vit` drops convolutions almost entirely:
   the image is cut into $16\times16$ patches, each patch is linearly embedded as a token, and a
   standard Transformer encoder runs on the tokens.

The smallest example is our 16 glimpses used as tokens, with no learned projections at all
($\mathbf{Q}=\mathbf{K}=\mathbf{V}=$ the patch vectors, $d_k=100$). PyTorch's fused
`F.scaled_dot_product_attention` computes the same thing.
""")

code(r'''
tokens = patches.detach()                                  # (N, d) = (16, 100)
N, d = tokens.shape
Q = K_ = V = tokens
A = torch.softmax(Q @ K_.T / math.sqrt(d), dim=-1)         # (N, N), softmax over keys (last axis)
Y = A @ V                                                  # (N, d)
assert A.shape == (N, N) and Y.shape == (N, d)
torch.testing.assert_close(A.sum(-1), torch.ones(N))       # every row is a distribution
torch.testing.assert_close(Y, F.scaled_dot_product_attention(Q[None], K_[None], V[None])[0])

q = int(ink_per_patch.argmax())                            # the patch with the most ink as the query
print(f"A: {tuple(A.shape)}, rows sum to 1; query patch {q} puts {A[q, q]:.3f} of its attention on itself, "
      f"{A[q, digit_patch].sum():.3f} on the {digit_patch.sum().item()} digit patches")
fig = viz.heatmap_grid([[A, A[q].reshape(GRID, GRID), ds.masks[i0].float()]],
                       col_labels=["A (16 × 16)", f"row {q} as a 4 × 4 map", "digit mask"], size=2.4)
plt.show()
''')

md(r"""
No parameter was trained here, yet the weights are input dependent: a different image gives
different patches and therefore a different $\mathbf{A}$. What training adds is the
projections $\mathbf{W}_Q, \mathbf{W}_K, \mathbf{W}_V$, which decide *which* similarity
counts. Part IV builds the learned version step by step.
""")

# ----------------------------------------------------------------------------- 1.9 map
md(r"""
## 1.9 A map of the course

Every later chapter fits the taxonomy of this chapter. "Weights act on" says what the
weights multiply. "Normalisation" says how scores become weights (section 1.4).

| Part | mechanism | domain | soft / hard | normalisation | weights act on |
|---|---|---|---|---|---|
| II | SENet {cite}`hu2018senet` | channel | soft | sigmoid | features |
| II | ECA-Net {cite}`wang2020eca` | channel | soft | sigmoid | features |
| II | SKNet {cite}`li2019sknet` | channel, over kernel branches (Guo et al.: *branch* attention) | soft | softmax over branches | features |
| III | spatial attention module (with Grad-CAM {cite}`selvaraju2017gradcam` as a post-hoc contrast) | spatial | soft | sigmoid | features |
| III | CBAM {cite}`woo2018cbam` | mixed: channel, then spatial | soft | sigmoid | features |
| III | BAM {cite}`park2018bam` | mixed: parallel channel and spatial branches | soft | sigmoid | features |
| III | Learn to Pay Attention {cite}`jetley2018ltpa` | spatial (attention-weighted pooling) | soft | softmax over positions | features |
| III | Residual Attention Network {cite}`wang2017residual` | mixed ($C\times H\times W$ mask, $(1+\mathbf{M})\otimes\mathbf{X}$) | soft | sigmoid | features |
| III | Spatial Transformer {cite}`jaderberg2015stn` | spatial transform (resamples, does not reweight) | soft (differentiable sampling) | none | input or features |
| IV | SAGAN layer {cite}`zhang2019sagan`, non-local {cite}`wang2018nonlocal` | self-attention over positions | soft | softmax (non-local also $1/N$) | features |
| IV | DANet {cite}`fu2019danet` | self-attention over positions and over channels | soft | softmax | features |
| IV | CCNet {cite}`huang2019ccnet`, GCNet {cite}`cao2019gcnet` | self-attention, restricted (criss-cross) or shared (global context) | soft | softmax | features |
| IV | Vision Transformer {cite}`dosovitskiy2021vit` | self-attention over patch tokens | soft | softmax | token embeddings |
| V | Recurrent Attention Model {cite}`mnih2014ram` | spatial glimpse location, one per step | **hard** (REINFORCE) | sampled location | input |
| V | Show, Attend and Tell {cite}`xu2015show` in miniature | spatial, a new map per output step | soft (the paper also has a hard variant) | softmax over positions | features |
| V | Attention to Scale {cite}`chen2016scale` | scale (a branch per input scale) | soft | softmax over scales, per pixel | per-scale score maps |
""")

# ----------------------------------------------------------------------------- exercises
md(r"""
## Exercises

**Exercise 1 (mask width).** In section 1.2 the Gaussian's width was half the box side.
Recompute the mean energy share inside the box for widths $0.125, 0.25, 0.5, 1, 2, 8$ (the
`width` argument of `gaussian_box_mask`) and plot it against the width. What happens for very
wide masks, and why? Is a very narrow mask good for recognising the digit?

<details>
<summary>Solution</summary>

```python
widths = [0.125, 0.25, 0.5, 1, 2, 8]
shares = [energy_share(gaussian_box_mask(ds.boxes, H, W, w) * x, inside).mean().item() for w in widths]
plt.semilogx(widths, shares, "o-"); plt.axhline(box_before.mean(), ls="--", color="gray")
plt.xlabel("mask width (fraction of box side)"); plt.ylabel("energy share in box"); plt.show()
print([round(v, 3) for v in shares])
```

The share falls as the mask widens and approaches the unmasked value (dashed line): a very
wide Gaussian is almost 1 everywhere, so it changes nothing. A very narrow mask gives the
highest share, but only because it keeps a small spot near the box centre and wipes out
most of the digit's strokes. The share measures *where* the energy is, not whether the
digit can still be read. Attention maps have to be judged by both.

</details>

**Exercise 2 (gate or distribution over 1,600 positions?).** Suppose a spatial module has
not learned anything yet and outputs the score $z=0$ at all $N=40\cdot 40$ positions. What is
each weight with a sigmoid gate, and with a softmax over positions? By what factor does each
shrink the input in $\mathbf{Y} = \mathbf{M}\otimes\mathbf{X}$? What does this suggest about
using a softmax map as a multiplicative gate, and about how softmax weights are used instead?

<details>
<summary>Solution</summary>

```python
zero = torch.zeros(40 * 40)
w_sig, w_soft = torch.sigmoid(zero)[0].item(), torch.softmax(zero, 0)[0].item()
print(f"sigmoid weight {w_sig}, softmax weight {w_soft:.6f} = 1/{1 / w_soft:.0f}")
Mx = torch.softmax(zero, 0).view(1, 1, 40, 40) * x[:1]
print(f"mean pixel before {x[:1].mean():.4f}, after the softmax 'gate' {Mx.mean():.2e}")
```

The sigmoid gate gives 0.5 everywhere, halving the signal (the reason gates initialised at
0.5 can slow early training). The softmax gives $1/1600$ per position, shrinking every
pixel 1,600-fold, so its output is tiny. Softmax weights are therefore used for a weighted
*sum* over positions, $\sum_i a_i\mathbf{v}_i$, which is an average and keeps the scale of
$\mathbf{v}$, as in Learn to Pay Attention and self-attention. They are not used as a
per-pixel gate.

</details>

**Exercise 3 (REINFORCE with a baseline).** The REINFORCE estimate of section 1.5 is unbiased
but noisy. Subtracting a constant *baseline* $b$ from the reward, that is using
$(r_i - b)\,\psi_i$ with $\psi_i = \nabla_\theta\log\alpha_i$, keeps it unbiased because
$\mathbb{E}[\psi_i] = \nabla_\theta \sum_i \alpha_i = 0$. With only 16 glimpses you need no
sampling: compute the mean and the standard deviation of a *one-sample* estimate exactly, by
summing over all 16 outcomes. Do it for $b=0$, for $b=\mathbb{E}[r]=\sum_i\alpha_i r_i$, and for
$b^\star = \sum_i \alpha_i r_i\psi_i^2 / \sum_i \alpha_i\psi_i^2$ (the constant that minimises
the variance). Check that the mean equals the exact gradient in all three cases.

<details>
<summary>Solution</summary>

```python
# psi_i = d log(alpha_i) / d theta for every glimpse i, shape (16,)
psi = torch.autograd.functional.jacobian(lambda t: torch.log_softmax(t * n_tilde, 0), theta.detach())
a, r = alpha.detach(), rewards
for name, b in (("b = 0", 0.0), ("b = E[r]", (a * r).sum()),
                ("b = b*", (a * r * psi**2).sum() / (a * psi**2).sum())):
    g = (r - b) * psi                      # the one-sample estimate, for each possible glimpse
    mean = (a * g).sum()
    std = (a * (g - mean) ** 2).sum().sqrt()
    print(f"{name:9s} (b = {float(b):5.2f}): mean {mean:+.4f}, std of one sample {std:5.2f}, "
          f"exact {exact.item():+.4f}")
```

All three means equal the exact gradient: a constant baseline does not bias the estimate.
The spread changes. On this image the expected reward as baseline lowers the one-sample
standard deviation only a little (about 13 %), while $b^\star$ roughly halves it. With $S$
samples each standard deviation shrinks by a further factor $\sqrt{S}$. The RAM chapter uses
a learned baseline for the same reason.

</details>

**Exercise 4 (classify).** Place each of these in the taxonomy (domain; soft or hard;
sigmoid, softmax or neither; input or features): (a) Itti et al.'s saliency model with
winner-take-all; (b) Mask R-CNN's mask selection at inference; (c) a spatial transformer
that crops and zooms the digit; (d) a global-average-pooling layer. Which of them is not
attention by this chapter's definition?

<details>
<summary>Solution</summary>

(a) Spatial, input dependent, and hard at the winner-take-all step (one location is
selected), acting on the input image. It is *not learned*: its rules are designed by hand,
so by this chapter's definition it is a saliency model, not learned attention.
(b) Hard, one-hot selection over the $K$ class channels of the mask output, driven by the
classification branch (a channel-like selection). It is not differentiable, which is fine
because during training the ground-truth class picks the mask instead.
(c) A spatial transform: the sampling grid is computed from the input by a learned
localisation network, and bilinear sampling keeps it differentiable (soft). It resamples
rather than reweights, so neither sigmoid nor softmax. It can act on the input or on features.
(d) Not attention: its weights ($1/N$ per position) are fixed and the same for every input.
A softmax attention pooling (Learn to Pay Attention) is its input-dependent, learned
counterpart.

</details>
""")

# ----------------------------------------------------------------------------- summary, refs
md(r"""
## Summary

- Attention, as this book uses the word, is a **learned, input-dependent weighting**:
  $\mathbf{Y} = f(g(\mathbf{X}), \mathbf{X})$, most often $\mathbf{Y} = g(\mathbf{X})\otimes\mathbf{X}$.
  Hand-made saliency (Itti et al.) is input dependent but not learned.
- The **domain** is the shape of the weights: channel $\mathbf{s}\in\mathbb{R}^{C}$, spatial
  $\mathbf{M}\in\mathbb{R}^{1\times H\times W}$, mixed (both), temporal (per frame), and
  branch (per parallel branch). On Cluttered Digits an oracle spatial mask raised the box's
  energy share far more than an oracle colour gate raised the digit's, because a channel gate
  acts everywhere at once.
- **Sigmoid** gives independent gates in $(0,1)$; **softmax** gives a distribution whose
  entries compete and sum to 1, with a temperature that sets its sharpness.
- **Soft** attention averages (differentiable); **hard** attention samples (no gradient
  through the sample), so it is trained with REINFORCE. The average of hard samples converges
  to the soft expectation, and the REINFORCE estimate to the exact gradient.
- Weights on the **input** and weights on **features** are different operations. Most modules
  in this book reweight features.
- Selection by another branch can **decouple tasks**: Mask R-CNN's class head picks one of
  $K$ per-class masks, so mask prediction does not compete across classes.
- **Self-attention** computes the weights from the features themselves,
  $\mathrm{softmax}(\mathbf{Q}\mathbf{K}^\top/\sqrt{d_k})\mathbf{V}$, from Bahdanau's alignment
  through the Transformer to non-local blocks and ViT.

Next: chapter 2 sets up the workbench (data, baseline CNN, training loop and cost
measurement) on which every mechanism in the table above is tested.

## References

Works cited in this chapter; full entries are on the book's Bibliography page.

- Itti, Koch and Niebur, saliency-based visual attention {cite}`itti1998saliency`
- Guo et al., attention mechanisms in computer vision, a survey {cite}`guo2022survey`
- He et al., Mask R-CNN {cite}`he2017maskrcnn`
- Mnih et al., recurrent models of visual attention {cite}`mnih2014ram`; Xu et al., Show, Attend and Tell {cite}`xu2015show`; Chen et al., Attention to Scale {cite}`chen2016scale`
- Bahdanau et al. {cite}`bahdanau2015align`; Vaswani et al. {cite}`vaswani2017attention`; Wang et al., non-local networks {cite}`wang2018nonlocal`; Zhang et al., SAGAN {cite}`zhang2019sagan`; Dosovitskiy et al., ViT {cite}`dosovitskiy2021vit`
- The mechanisms of the course map: {cite}`hu2018senet,wang2020eca,li2019sknet,selvaraju2017gradcam,woo2018cbam,park2018bam,jetley2018ltpa,wang2017residual,jaderberg2015stn,fu2019danet,huang2019ccnet,cao2019gcnet`
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    }
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:02d}"  # stable ids: regenerating gives an identical file
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []
    nbformat.validate(nb)
    return nb


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(), OUT)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(cells)} cells)")
