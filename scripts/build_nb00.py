"""Build notebooks/00_how_to_use.ipynb (chapter 0, "How to use this book").

Run from the repository root:

    .venv/bin/python scripts/build_nb00.py

The notebook is written without outputs; the book build executes it. Cell ids are fixed so
that rebuilding gives a clean diff.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbtools import SETUP as NB_SETUP, badge

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "00_how_to_use.ipynb"

BADGE = badge(OUT.name)

SETUP = NB_SETUP + """
import attn_lesson as al

PROFILE = al.get_profile()
al.seed_everything(0)
print(al.env_report(PROFILE))"""


def solution(body: str) -> str:
    """A solution hidden behind an HTML toggle (blank lines keep the inner Markdown alive)."""
    return f"<details>\n<summary>Solution</summary>\n\n{body.strip()}\n\n</details>"


cells: list[tuple[str, str, str]] = []  # (id, kind, source)


def md(cid: str, text: str) -> None:
    cells.append((cid, "markdown", text.strip("\n")))


def code(cid: str, text: str) -> None:
    cells.append((cid, "code", text.strip("\n")))


# --------------------------------------------------------------------------- title
md("title", f"""
# 0. How to use this book

Attention modules are usually a few lines of code with a large reputation. The only way to
find out what such a module does is to build it, train it with and without it, and
look at the weights it produces. Every chapter in this book does those three things, and
runs on a laptop. This chapter is the manual. It explains how to choose a reading path, how
to run the notebooks locally or on Colab, what a *profile* is, how to read the numbers the
chapters print (mean ± standard deviation over seeds), and what the course's dataset looks
like. It trains no models.

**Learning goals.** After this chapter you can

- choose a reading path through the book (self-study, lecture, or quick comparison);
- run any chapter locally or on Colab and control its experiment size with a profile;
- read a result such as "0.910 ± 0.010 (n=3 seeds)" and tell a real difference from noise;
- generate *Cluttered Digits* images and say what each image comes with (label, box, mask).

**Expected runtime.** Well under 30 s on a 2-core CPU, most of it spent starting Python and
importing PyTorch. Nothing here trains, so CPU and GPU take about the same time.

{BADGE}
""")

code("setup", SETUP)

md("setup-note", """
Every chapter starts with this cell. On Colab it installs the helper package `attn_lesson`
from the course repository, because Colab does not have it. In a local checkout the package
is already importable and nothing is installed. The printed line gives the Python and
PyTorch versions, the device, and the active profile. If your numbers differ from a
colleague's, compare this line first.
""")

# --------------------------------------------------------------------------- reading paths
md("paths", """
## 1. Reading paths

The book is written to be read in order, but you do not have to. There are three common ways
through it.

**Self-study: straight through.** Start at Part I and read the chapters in order. Each
chapter reuses the data, backbone and training loop introduced in Chapter 2 (the workbench),
and later mechanisms are explained by comparing them with earlier ones: ECA-Net is compared
with SENet, CBAM combines channel and spatial gates, and the Vision Transformer reuses
the self-attention layer from the SAGAN chapter. Run each cell, then try the exercises
before you open the solutions.

**Lecturer: one 90-minute lecture per family.** Each chapter is sized so that it can run
live in class. The cpu profile budget is at most 150 s per notebook (see Section 5). For each
lecture, assign Chapter 1 (the taxonomy) as preparation, and Chapter 2 if students have not
seen the workbench yet. Then use:

| Lecture | Core chapters (in class) | If time remains / as homework |
|---|---|---|
| Channel attention | SENet, ECA-Net | SKNet (attention over kernel sizes) |
| Spatial attention | spatial attention module + Grad-CAM, CBAM | BAM, Spatial Transformer |
| Self-attention | Q/K/V and the SAGAN layer, Non-local, Vision Transformer | DANet, CCNet and GCNet |

It is a good idea to run the notebooks once before class. You will then know how long each
one takes on the machine you will project from. If you teach on Colab, also check that the
GPU runtime is available.

**Practitioner: jump to the zoo.** If you want to know which module to try in your own
network, start with the attention zoo chapter in Part VI. It places every module in the same
backbone and compares accuracy (mean ± std over seeds), parameters, FLOPs and latency. Then
open the chapter of the module you choose to see its equations and the details of the
reference implementation. Until Part VI is published, Chapter 2 (the workbench) shows the
shared backbone and how a module plugs into it.
""")

# --------------------------------------------------------------------------- syllabus
md("syllabus", """
## 2. The syllabus

The course has six parts. Part I is available now; Parts II (chapters 3–5) and III (chapters
6–9: spatial attention with Grad-CAM, CBAM, BAM, Learn to Pay Attention) are in the book; their
`cpu`-profile training is short, and each chapter says what that means for its comparisons
(chapter 7 shows why short training penalises gated blocks, and tests it). The rest is being written and will appear part by part, so for the chapters not
yet in the table of contents the list below is a plan.

- **Part I. Foundations.** 0: how to use this book (this chapter). 1: what attention is, as a
  taxonomy: soft vs hard attention; spatial, channel and mixed domains; weights on inputs vs
  weights on features; task decoupling as in Mask R-CNN. 2: the workbench: data, baseline
  CNN, training loop and cost measurement.
- **Part II. Channel attention.** SENet, ECA-Net, SKNet.
- **Part III. Spatial and mixed attention.** Spatial attention module with Grad-CAM, CBAM,
  BAM, Learn to Pay Attention, Residual Attention Network, Spatial Transformer.
- **Part IV. Self-attention.** Queries, keys and values in the SAGAN layer; Non-local blocks
  (four pairwise functions); DANet (position and channel attention modules); CCNet and GCNet;
  Vision Transformer (multi-head self-attention, scaled dot-product attention, attention
  rollout).
- **Part V. Attention as a process.** Hard attention with a recurrent glimpse model trained
  by REINFORCE (RAM); Show-Attend-and-Tell in miniature (attending while emitting a
  sequence of digits); attention to scale (zooming).
- **Part VI. Synthesis.** The attention zoo: every module in one backbone, with accuracy ±
  std, parameters, FLOPs, latency and an interactive explorer. An appendix covers scaling up
  with `torchrun` and distributed data parallel (DDP).
""")

# --------------------------------------------------------------------------- colab vs local
md("running", """
## 3. Running the notebooks: Colab or local

**On Colab.** Click the *Open in Colab* badge at the top of a chapter. For the chapters that
train, choose **Runtime → Change runtime type → GPU** (a T4 is enough) before you run
anything. Then run the setup cell. It installs `attn_lesson` from the course repository with
`pip`, which needs an internet connection once per Colab session. The package's requirements
are chosen so that the PyTorch version Colab preinstalls satisfies them, so the install
should not replace it. With a GPU runtime the profile becomes `gpu` automatically
(Section 4).

**Locally.** Clone the repository and use the `make` targets from its root:

| Command | What it does |
|---|---|
| `make setup` | creates a virtual environment in `.venv/` and installs the requirements and `attn_lesson` into it |
| `make book` | builds the book, which executes every notebook |
| `make test` | runs the tests: unit tests for `attn_lesson`, and every notebook executed as a test |

To work on the notebooks interactively, start Jupyter from the environment:
`.venv/bin/jupyter lab`. A local run needs no network: the default data is generated on
your machine (Section 8).
""")

# --------------------------------------------------------------------------- profiles
md("profiles", """
## 4. Profiles: `cpu` and `gpu`

A {term}`profile` sets how large a chapter's experiments are: how many training images, how
many epochs, and how many seeds.

- `cpu`: sized so that every chapter fits its time budget on a 2-core laptop (Section 5).
- `gpu`: more data and more epochs, for a CUDA GPU such as Colab's T4.

`al.get_profile()` chooses the profile in this order of precedence:

1. an explicit name, as in `al.get_profile("cpu")`;
2. the environment variable `ATTN_LESSON_PROFILE` (`cpu` or `gpu`);
3. `gpu` if CUDA is available, otherwise `cpu`.

The profile and the device are separate choices. The device is always the GPU when CUDA is
available. Forcing `gpu` on a machine without CUDA gives you the large experiments on the
CPU, which is slow. Forcing `cpu` on a GPU gives you the small experiments, run quickly on the
GPU. To force a profile for a whole session, set the variable before starting Jupyter
(`ATTN_LESSON_PROFILE=cpu .venv/bin/jupyter lab`). On Colab, run
`%env ATTN_LESSON_PROFILE=cpu` before the setup cell.

Each chapter states its sizes for both profiles in a single cell with `PROFILE.pick`, which
returns the value for the active profile. The sizes in the next cell are only an example;
this chapter trains nothing.
""")

code("profile-pick", """
# How a chapter declares its experiment sizes (illustrative values).
N_TRAIN = PROFILE.pick(cpu=6_000, gpu=30_000)
EPOCHS = PROFILE.pick(cpu=5, gpu=15)
SEEDS = PROFILE.pick(cpu=(0, 1, 2), gpu=(0, 1, 2, 3, 4))
print(f"profile {PROFILE.name}: {N_TRAIN} training images, {EPOCHS} epochs, seeds {SEEDS}")
""")

md("profile-explicit", """
An explicit name takes precedence over everything else. A name that is not a profile raises
a `ValueError` with a message that lists the allowed names:
""")

code("profile-names", """
import os

print("ATTN_LESSON_PROFILE is", repr(os.environ.get("ATTN_LESSON_PROFILE")))
for name in ("cpu", "gpu"):
    p = al.get_profile(name)
    print(f"al.get_profile({name!r}) -> {p!r}; pick gives", p.pick(cpu="small sizes", gpu="large sizes"))

try:
    al.get_profile("tpu")
except ValueError as err:
    print("ValueError:", err)
""")

# --------------------------------------------------------------------------- runtimes
md("runtimes", """
## 5. Runtimes

Each chapter has a time budget. The budget covers the whole notebook, training included.

- **`cpu` profile:** at most **150 s** of wall time per chapter on a 2-core CPU. This is the
  machine the tests run on, and the tests run exactly what you run. No CI-only shortcuts
  make the test run faster than yours.
- **`gpu` profile:** the aim is **about 3 minutes** per chapter on a Colab T4. This is a
  target rather than a guarantee, because Colab machines vary.

Each chapter states its expected runtime under its title. A faster CPU is faster. A busy
machine, or a first run that still has to import and compile, can be slower.
""")

# --------------------------------------------------------------------------- template
md("template", """
## 6. What every chapter looks like

All chapters follow the same eleven steps, in the same order, so you always know where to
look:

1. **Title**, a motivation paragraph, learning goals, expected runtime (CPU / GPU), and the
   Colab badge.
2. **Setup cell**: installs `attn_lesson` if it is missing, seeds, prints device and profile.
3. **Intuition**: one figure or toy example before any equation.
4. **Derivation**: the paper's equations, with every symbol tied to a tensor shape, and
   citations.
5. **Build it step by step** on small tensors with shape checks. Then the package's version
   of the module is shown, and a check confirms that both give the same output for the same
   weights.
6. **Cost**: parameters, FLOPs and latency compared with the baseline.
7. **Train**: baseline vs mechanism on the workbench data, sized by the profile, with
   learning curves. Comparisons use several seeds.
8. **Look inside**: the attention maps or weights as pictures, plus one number that
   measures them.
9. **Reproduce one claim** from the paper, with the paper's number next to ours and a plain
   statement of whether our small setting agrees.
10. **Exercises** (at least three), with hidden solutions.
11. **Summary and references.**
""")

# --------------------------------------------------------------------------- results
md("results", """
## 7. How to read the results

**Numbers depend on the seed.** The seed sets the initial weights, the order of the
mini-batches and the augmentation. On a CPU, the same seed with the same number of threads
reproduces a run exactly. On a GPU some kernels are not deterministic, so runs with the same
seed match only approximately.

**We report mean ± sample standard deviation over seeds.** When a chapter compares two
models, it trains each one with several seeds and prints a line such as
`baseline: 0.9100 ± 0.0100 (n=3 seeds)`. The ± is the *sample* standard deviation (divide
by $n-1$). Use it to judge the gap between the models:

- a difference smaller than the seed-to-seed spread is **noise** (it is below the
  {term}`noise floor`), and the text will say so;
- a difference larger than the spread is worth a closer look, but with three seeds it is
  still weak evidence, not proof.

`al.mean_std` computes the pair. Here it is applied to three accuracies made up for the
example:
""")

code("mean-std", """
import numpy as np

accs = [0.91, 0.90, 0.92]  # illustrative accuracies of one model trained with three seeds
m, s = al.mean_std(accs)
print(f"mean ± sample std: {m:.3f} ± {s:.3f} (n={len(accs)} seeds)")
print(f"np.std(accs)         = {np.std(accs):.4f}  (divides by n: smaller, not what we report)")
print(f"np.std(accs, ddof=1) = {np.std(accs, ddof=1):.4f}  (divides by n - 1: same as al.mean_std)")
assert abs(s - np.std(accs, ddof=1)) < 1e-12
""")

md("results-note", """
Be careful with `numpy`: by default `np.std` divides by $n$, not $n-1$. With only three
seeds the two values differ noticeably, as the cell above prints.
""")

# --------------------------------------------------------------------------- data
md("data", """
## 8. The data: Cluttered Digits

The chapters use data that is generated on your machine, so nothing is downloaded. The
digits come from the 1,797 handwritten 8×8 digits bundled with scikit-learn
{cite}`alpaydin1998digits,pedregosa2011sklearn`. These digits are split once into a training
pool and a test pool, so the test images use handwriting the model never saw during
training. `al.cluttered_digits` scales each digit up, places it at a random position on a
larger canvas (40×40 by default), and adds fragments cut from other digits as clutter. Each
image comes with

- `labels`: the digit class;
- `boxes`: the tight bounding box `(x0, y0, x1, y1)` around the digit's own ink, in pixels,
  with `x1` and `y1` exclusive;
- `masks`: the pixels that belong to the digit rather than to the clutter.

Boxes and masks let later chapters measure whether attention falls on the digit. The main
parameters are `canvas`, `scale` (digit size), `clutter` (number of fragments), `fragment`,
`n_digits` and `colour`. The same `seed`, split and parameters always produce the same
images.
""")

code("data-grid", """
from attn_lesson import viz  # viz is a submodule: import it once, then al.viz works too

ds = al.cluttered_digits(16, 'test', seed=0)
print(ds)
print("images", tuple(ds.images.shape), "| labels", tuple(ds.labels.shape),
      "| boxes", tuple(ds.boxes.shape), "| masks", tuple(ds.masks.shape))
fig = al.viz.show_images(ds.images, ds.labels, ds.boxes)
""")

md("data-checks", """
The red rectangle is the ground-truth box, and the title is the label. Clutter may overlap
the digit and its box; the mask still marks only the digit's own pixels. The next cell checks
three claims from the text: the same seed gives the same images, a different seed gives
different images, and the train and test pools share no handwritten digit. It also measures
how much of the canvas the box covers. This fraction matters later. An attention map that
spreads its weight uniformly puts exactly this fraction of its mass inside the box, so a
*localisation score* is only meaningful when it is compared with this baseline.
""")

code("data-asserts", """
import torch

again = al.cluttered_digits(16, 'test', seed=0)
other = al.cluttered_digits(16, 'test', seed=1)
assert torch.equal(ds.images, again.images) and torch.equal(ds.labels, again.labels)
assert not torch.equal(ds.images, other.images)

pools = al.glyph_pools()
assert set(pools["train"].tolist()).isdisjoint(pools["test"].tolist())
print(f"glyph pools: {len(pools['train'])} train digits, {len(pools['test'])} test digits, no overlap")

H, W = ds.images.shape[-2:]
x0, y0, x1, y1 = (t.view(-1, 1, 1) for t in ds.boxes.unbind(-1))
ys, xs = torch.arange(H).view(1, H, 1), torch.arange(W).view(1, 1, W)
in_box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
ink_in_box = (ds.masks & in_box).sum((1, 2)) / ds.masks.sum((1, 2))
assert torch.all(ink_in_box == 1)  # the box contains all of the digit's ink
area = in_box.float().mean((1, 2))
print(f"box area / canvas area over these {len(ds)} images: mean {area.mean():.3f}, "
      f"min {area.min():.3f}, max {area.max():.3f}")
""")

md("cifar", """
CIFAR-10 {cite}`krizhevsky2009cifar` is used only where a chapter needs real photographs,
mostly under the `gpu` profile. It needs a download. `al.load_cifar10` first looks for the
data on disk, then tries to download it. When it cannot get the data, it raises one
`DataUnavailableError` that explains what to do. The next cell shows that message for an
empty folder:
""")

code("cifar-message", """
import tempfile, textwrap

with tempfile.TemporaryDirectory() as empty:
    try:
        al.load_cifar10(root=empty, download=False)
    except al.DataUnavailableError as err:
        print(textwrap.fill(f"DataUnavailableError: {err}", 100))
""")

# --------------------------------------------------------------------------- exercises how-to
md("solutions-howto", """
## 9. Exercises and hidden solutions

Every chapter ends with at least three short exercises. Each solution is hidden behind a
**Solution** toggle, which you open by clicking it. The toggle works in the rendered book
and in JupyterLab; a viewer that does not support it shows the solution expanded. Try the
exercise first, in a new code cell, and open the solution afterwards. Solutions that contain code are not run when the book is built. Copy them into a
cell to run them.
""")

# --------------------------------------------------------------------------- notation
md("notation", """
## 10. Notation and glossary

All chapters use the same symbols. For example, a feature map is
$\\mathbf{X}\\in\\mathbb{R}^{C\\times H\\times W}$ (with the batch axis $B$ first in code),
$N=HW$ is the number of positions, $\\mathbf{s}\\in\\mathbb{R}^{C}$ are channel weights,
and $\\mathbf{M}\\in\\mathbb{R}^{1\\times H\\times W}$ is a spatial map. The
{doc}`../book/notation` page (`book/notation.md` in the repository) lists every symbol with
its PyTorch shape. It also explains how we count parameters and FLOPs and how we measure
latency. The {doc}`../book/glossary` explains the terms, and gives the Chinese term used in
the original lecture notes next to each English one, for example 通道注意力 for channel
attention.
""")

# --------------------------------------------------------------------------- exercises
md("exercises", "## 11. Exercises")

md("ex1", """
**Exercise 1: force the `gpu` profile.** Set `os.environ["ATTN_LESSON_PROFILE"] = "gpu"`,
call `al.get_profile()` and `al.env_report(...)` again, and evaluate the `PROFILE.pick(...)`
line from Section 4 with the new profile. What changes, and what stays the same? What
happens if you set the variable to `"gpu2"`? Remove the variable again at the end.

""" + solution("""
```python
import os
os.environ["ATTN_LESSON_PROFILE"] = "gpu"
p = al.get_profile()
print(al.env_report(p))
print(p.pick(cpu=6_000, gpu=30_000))
os.environ["ATTN_LESSON_PROFILE"] = "gpu2"
try:
    al.get_profile()
except ValueError as err:
    print(err)
del os.environ["ATTN_LESSON_PROFILE"]
```

The profile changes to `gpu`, so every `pick` returns the `gpu` value: a chapter would build
its larger experiment. The *device* in the report does not change, because the device
depends only on whether CUDA is available. On a CPU-only machine you would run the large
experiment on the CPU, well beyond the 150 s budget. An unknown value raises a `ValueError`
that names `$ATTN_LESSON_PROFILE` as its source and lists the allowed profiles. One more
detail: a chapter reads the profile once, in its setup cell. Setting the variable later
does not affect the `PROFILE` that chapter already has, so set it before the setup cell or
before starting Jupyter.
"""))

md("ex2", """
**Exercise 2: colour images with two digits.** Generate 8 *training* images with two digits
each, in colour, on a 40×64 canvas. Print the shapes of `images`, `labels` and `boxes`, and
show them with `al.viz.show_images`. Then try a 32×32 canvas for two digits. What happens,
and why?

""" + solution("""
```python
from attn_lesson import viz  # already imported if you ran Section 8

two = al.cluttered_digits(8, 'train', n_digits=2, colour=True, canvas=(40, 64), seed=3)
print(two.images.shape, two.labels.shape, two.boxes.shape)
fig = al.viz.show_images(two.images, two.labels, two.boxes, ncols=4, size=2.4)

try:
    al.cluttered_digits(8, 'train', n_digits=2, canvas=32)
except ValueError as err:
    print(err)
```

The shapes are `(8, 3, 40, 64)`, `(8, 2)` and `(8, 2, 4)`: three colour channels, two labels
per image (left to right), and one box per digit. Each digit and each clutter fragment gets
its own random colour. The 32×32 canvas is rejected with a `ValueError`. The canvas is split
into one slot per digit, side by side, and with the default `scale=(1.5, 2.5)` a digit can
be up to 8 × 2.5 = 20 pixels wide. Two digits therefore need a canvas at least 40 pixels wide,
and the message says exactly that.
"""))

md("ex3", """
**Exercise 3: mean ± std for your own numbers.** Two models were each trained with three
seeds (the numbers are made up): model A reached `[0.931, 0.925, 0.940]` and model B
`[0.938, 0.944, 0.929]`. Compute mean ± sample std for each with `al.mean_std`. Is B better
than A?

""" + solution("""
```python
a = [0.931, 0.925, 0.940]
b = [0.938, 0.944, 0.929]
for name, v in (("A", a), ("B", b)):
    m, s = al.mean_std(v)
    print(f"{name}: {m:.4f} ± {s:.4f} (n={len(v)} seeds)")
```

This prints `A: 0.9320 ± 0.0075` and `B: 0.9370 ± 0.0075`. The gap of 0.005 is smaller than
the seed-to-seed spread of either model, so these numbers give no evidence that B is better.
The difference is noise. To settle the question you would need more seeds, or an experiment
designed so that the mechanism in B has a reason to help.
"""))

md("ex4", """
**Exercise 4: how big is the target?** Using 500 test images, compute the average fraction of
the canvas covered by the digit's box for `scale=(1.5, 1.5)` and for `scale=(2.5, 2.5)`,
reusing the box-mask code from Section 8. What does a uniform attention map score on each?

""" + solution("""
```python
import torch

def box_area_fraction(ds):
    H, W = ds.images.shape[-2:]
    x0, y0, x1, y1 = (t.view(-1, 1, 1) for t in ds.boxes.unbind(-1))
    ys, xs = torch.arange(H).view(1, H, 1), torch.arange(W).view(1, 1, W)
    in_box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return in_box.float().mean((1, 2)).mean().item()

for scale in [(1.5, 1.5), (2.5, 2.5)]:
    d = al.cluttered_digits(500, 'test', scale=scale, seed=0)
    print(scale, f"{box_area_fraction(d):.3f}")
```

With `seed=0` the boxes cover about 7 % of the canvas for the small digits and about 19 % for
the large ones. The box is tighter than the 12×12 or 20×20 square the glyph is drawn in,
because a digit's ink does not fill its glyph. A uniform attention map would put that
fraction of its mass in the box. A localisation score must therefore be read against the
box's area. For example, 30 % of the mass inside the box is about four times the uniform
baseline for the small digits, but only about 1.5 times the baseline for the large ones.
"""))

# --------------------------------------------------------------------------- summary
md("summary", """
## 12. Summary

- Three reading paths: straight through for self-study; for a lecture, a few chapters of one
  family (channel, spatial or self-attention); for a quick decision, the attention zoo.
- Part I is available. Parts II–VI are in progress and will appear part by part.
- Run locally with `make setup`, `make book` and `make test`, and `.venv/bin/jupyter lab`, or
  on Colab with the badge, a GPU runtime, and the setup cell, which installs `attn_lesson`.
- The profile (`cpu` or `gpu`) sets experiment sizes. You choose it with an argument, with
  `ATTN_LESSON_PROFILE`, or it is detected from CUDA. `PROFILE.pick(cpu=..., gpu=...)` states
  both sizes in one cell. The device is chosen separately.
- Budgets: at most 150 s per chapter on a 2-core CPU under `cpu`; about 3 minutes on a Colab
  T4 under `gpu`.
- Results are reported as mean ± sample std over seeds. A gap smaller than that spread is
  noise.
- Cluttered Digits is generated offline and deterministically, with a label, a box and a mask
  for every digit. Test handwriting is never seen during training.

Next: Chapter 1 asks what "attention" means in vision and sorts the mechanisms of this book
into a taxonomy.
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"}}
    out = []
    for cid, kind, src in cells:
        cell = new_markdown_cell(src) if kind == "markdown" else new_code_cell(src)
        cell.id = cid
        out.append(cell)
    nb.cells = out
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids)), "cell ids must be unique"
    nbformat.validate(nb)
    return nb


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(), OUT)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(cells)} cells)")
