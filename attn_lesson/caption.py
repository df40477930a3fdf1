"""Show, Attend and Tell (Xu et al., ICML 2015) in miniature: read the digits of an image in order.

An encoder turns the image into ``L`` *annotation vectors* ``a_i`` (the course backbone's last
feature map, ``(B, D, h, w)`` read as ``(B, L, D)`` with ``L = h w``); an LSTM decoder emits one
digit per step and, at every step, looks at the map again through soft attention:

* :class:`ShowAttendTell` with ``attention="soft"`` (the paper's deterministic attention, as the
  authors' code ``arctic-captions`` writes it)::

      e_ti  = u^T tanh(W_a a_i + W_h h_{t-1} + b)          f_att, one score per location
      alpha_t = softmax_i(e_t)                              (B, L), sums to 1 over locations
      beta_t  = sigmoid(w_beta^T h_{t-1} + b_beta)          a *scalar* gate per image (gate=True)
      z_t   = beta_t * sum_i alpha_ti a_i                   context, (B, D)
      (h_t, c_t) = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
      p(y_t) = softmax(W_o tanh(E y_{t-1} + L_h h_t + L_z z_t))     "deep output"
      h_0 = tanh(W_h0 mean_i a_i),  c_0 = tanh(W_c0 mean_i a_i)

  ``y_{t-1}`` is the true previous digit in training (teacher forcing, :meth:`objective`) and the
  model's own previous guess at test (greedy decoding, :meth:`forward`); ``y_{-1}`` is a start
  token. ``attention="none"`` is the control without attention: ``alpha_ti = 1/L`` at every
  step, so ``z_t`` is the mean-pooled map (times the gate). ``attention="hard"`` samples one
  location ``s_t ~ Categorical(alpha_t)`` in training and uses ``z_t = beta_t a_{s_t}``; its
  attention network learns by REINFORCE with a moving-average baseline (:meth:`objective`); at
  test it takes the most probable location.
* The **doubly stochastic** term (:func:`doubly_stochastic`) ``mean_i (1 - sum_t alpha_ti)^2``
  per image, averaged over the batch, weighted by ``ds_weight`` (the paper's lambda) in
  :meth:`ShowAttendTell.objective`.
* :class:`PositionHeadsCNN`: the control without a decoder, the backbone's flattened map, one
  hidden layer, and one classifier head per digit position.

Every model returns logits ``(B, K, T)`` (classes on dim 1, positions last), so
``F.cross_entropy(logits, y)`` with labels ``y`` ``(B, T)`` is the mean over digits, and
:func:`attn_lesson.train.fit` / :func:`~attn_lesson.train.evaluate` report **per-digit accuracy**
(the share of digits read right, over all positions). :func:`sequence_scores` adds the
whole-sequence exact match (every digit of the image right) and the accuracy at each position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import ResNetBackbone, _check_positive_int

ATTENTION_KINDS = ("soft", "none", "hard")


def _check_number(name: str, value, lo: float = 0.0, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= lo \
            or (hi is not None and not value <= hi):
        allowed = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}]"
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
    return float(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _check_labels(y, batch: int, length: int, num_classes: int) -> None:
    if not isinstance(y, torch.Tensor) or y.shape != (batch, length) or y.dtype.is_floating_point:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be an integer tensor of shape (B, T) = ({batch}, {length}), one "
                         f"digit class per position, got {shape}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y must hold classes in 0..{num_classes - 1}, got min {y.min().item()}, "
                         f"max {y.max().item()}")


class Encoder(nn.Module):
    """The course backbone without its pooling and head: ``(B, C, H, W) -> (B, D, h, w)``, the last
    stage's map (``D = widths[-1]``; the default stride-2 stem and two stride-2 stages give
    ``h, w = ceil(H / 8), ceil(W / 8)``)."""

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64), depths=(1, 1, 1),
                 stem_stride: int = 2):
        super().__init__()
        net = ResNetBackbone(in_channels, 10, tuple(widths), tuple(depths), stem_stride)
        self.stem, self.stages = net.stem, net.stages
        self.in_channels, self.channels = in_channels, net.widths[-1]
        self.stride = stem_stride * 2 ** (len(net.widths) - 1)

    def grid(self, image_size) -> tuple[int, int]:
        """``(h, w)`` of the map for an ``(H, W)`` image (each stride-2 3x3 conv: ``ceil(n / 2)``)."""
        h, w = image_size
        for _ in range(self.stride.bit_length() - 1):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, {self.in_channels}, H, W), got {shape}")
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
        return h


def doubly_stochastic(alpha: torch.Tensor) -> torch.Tensor:
    r"""The doubly stochastic penalty of a batch of attention weights ``alpha`` ``(B, T, L)``:
    :math:`\frac1B\sum_b \frac1L\sum_i (1 - \sum_t \alpha_{bti})^2`. The paper writes
    :math:`\lambda\sum_i(1-\sum_t\alpha_{ti})^2` per image; the authors' code averages over the
    locations (as here) and sums over the batch (here: averaged)."""
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 3:
        raise ValueError(f"alpha must be a (B, T, L) tensor of attention weights, got "
                         f"{tuple(alpha.shape) if isinstance(alpha, torch.Tensor) else alpha!r}")
    return ((1 - alpha.sum(1)) ** 2).mean(1).mean()


@dataclass
class Decoding:
    """One pass of the decoder over a batch: ``logits`` ``(B, K, T)``; ``alpha`` ``(B, T, L)`` the
    attention weights (for hard attention: the distribution the location was drawn from);
    ``beta`` ``(B, T)`` the gate (ones without it); ``tokens`` ``(B, T)`` the previous-digit inputs
    used at each step (start token first); ``log_prob_locations`` ``(B, T)`` log alpha of the
    sampled locations (hard attention in training; zeros otherwise)."""

    logits: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    tokens: torch.Tensor
    log_prob_locations: torch.Tensor


class ShowAttendTell(nn.Module):
    """Encoder + attention LSTM decoder that reads ``length`` digits left to right (module
    docstring for the equations).

    Parameters: ``in_channels``; ``num_classes`` ``K`` (digits; the start token is index ``K`` of
    the embedding); ``length`` ``T``, the digits per image; ``widths``/``depths``/``stem_stride``
    of the backbone; ``hidden`` LSTM units; ``embed`` the digit embedding's width (also the deep
    output's); ``att_dim`` the width of f_att's tanh layer; ``attention`` one of
    ``"soft"``, ``"none"``, ``"hard"``; ``gate`` the scalar gate beta (``False``: beta = 1);
    ``ds_weight`` lambda of the doubly stochastic term (unused without attention, where the
    term is a constant); ``entropy_weight`` and
    ``baseline_decay`` (hard attention only) the entropy bonus and the moving average's decay.

    After every call, ``last_alpha`` ``(B, T, h, w)`` and ``last_beta`` ``(B, T)`` hold the
    attention of that call (detached), for looking inside.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, length: int = 3, *,
                 widths=(16, 32, 64), depths=(1, 1, 1), stem_stride: int = 2, hidden: int = 128,
                 embed: int = 32, att_dim: int = 64, attention: str = "soft", gate: bool = True,
                 ds_weight: float = 1.0, entropy_weight: float = 0.002, baseline_decay: float = 0.9):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("length", length), ("hidden", hidden), ("embed", embed),
                        ("att_dim", att_dim)):
            _check_positive_int(name, v)
        if num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        self.gate = _check_bool("gate", gate)
        self.ds_weight = _check_number("ds_weight", ds_weight)
        self.entropy_weight = _check_number("entropy_weight", entropy_weight)
        self.baseline_decay = _check_number("baseline_decay", baseline_decay, 0.0, 1.0)
        self.num_classes, self.length, self.hidden, self.attention = num_classes, length, hidden, attention
        self.encoder = Encoder(in_channels, widths, depths, stem_stride)
        d = self.encoder.channels
        self.init_h, self.init_c = nn.Linear(d, hidden), nn.Linear(d, hidden)
        if attention == "none":                                  # no f_att: alpha is uniform
            self.att_a = self.att_h = self.att_u = None
        else:
            self.att_a = nn.Linear(d, att_dim)                   # W_a (with the bias b)
            self.att_h = nn.Linear(hidden, att_dim, bias=False)  # W_h
            self.att_u = nn.Linear(att_dim, 1)                   # u (its bias cancels in softmax)
        self.beta = nn.Linear(hidden, 1) if gate else None       # w_beta, b_beta
        self.embedding = nn.Embedding(num_classes + 1, embed)    # K digits + the start token
        self.lstm = nn.LSTMCell(embed + d, hidden)
        self.out_h, self.out_z = nn.Linear(hidden, embed), nn.Linear(d, embed, bias=False)
        self.out = nn.Linear(embed, num_classes)
        self.register_buffer("reward_baseline", torch.zeros(()))   # hard attention's moving average
        self.last_alpha: torch.Tensor | None = None
        self.last_beta: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return (f"length={self.length}, attention={self.attention!r}, gate={self.gate}, "
                f"ds_weight={self.ds_weight}")

    def annotations(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``a`` ``(B, L, D)`` (the map's locations in row-major order) and the grid ``(h, w)``."""
        fmap = self.encoder(x).float()
        b, d, h, w = fmap.shape
        return fmap.flatten(2).transpose(1, 2), (h, w)

    def attend(self, a: torch.Tensor, pa: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``alpha`` ``(B, L)`` = softmax over locations of ``u^T tanh(W_a a_i + b + W_h h)``;
        ``pa = att_a(a)`` ``(B, L, att_dim)`` is computed once per image."""
        if self.attention == "none":
            return a.new_full(a.shape[:2], 1.0 / a.shape[1])
        e = self.att_u(torch.tanh(pa + self.att_h(h)[:, None])).squeeze(2)      # (B, L)
        return torch.softmax(e, dim=1)

    def decode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Decoding:
        """Run the decoder for ``T`` steps: teacher forcing with labels ``y`` ``(B, T)``, greedy
        decoding when ``y`` is ``None``."""
        a, grid = self.annotations(x)
        bsz = a.shape[0]
        if y is not None:
            _check_labels(y, bsz, self.length, self.num_classes)
        mean_a = a.mean(1)
        h, c = torch.tanh(self.init_h(mean_a)), torch.tanh(self.init_c(mean_a))
        pa = self.att_a(a) if self.attention != "none" else None
        prev = torch.full((bsz,), self.num_classes, dtype=torch.long, device=a.device)
        logits, alphas, betas, tokens, logps = [], [], [], [], []
        for t in range(self.length):
            alpha = self.attend(a, pa, h)                                             # (B, L)
            if self.attention == "hard":
                s = (torch.multinomial(alpha.detach(), 1) if self.training
                     else alpha.argmax(1, keepdim=True))                              # (B, 1)
                z = a.gather(1, s[:, :, None].expand(-1, -1, a.shape[2])).squeeze(1)  # a_{s_t}
                logps.append(torch.log(alpha.gather(1, s).squeeze(1).clamp_min(1e-12))
                             if self.training else a.new_zeros(bsz))
            else:
                z = torch.bmm(alpha[:, None], a).squeeze(1)                           # sum_i alpha_i a_i, (B, D)
                logps.append(a.new_zeros(bsz))
            beta = torch.sigmoid(self.beta(h)).squeeze(1) if self.gate else a.new_ones(bsz)
            z = beta[:, None] * z
            emb = self.embedding(prev)
            h, c = self.lstm(torch.cat([emb, z], 1), (h, c))
            logit = self.out(torch.tanh(emb + self.out_h(h) + self.out_z(z)))          # (B, K)
            logits.append(logit), alphas.append(alpha), betas.append(beta), tokens.append(prev)
            prev = y[:, t] if y is not None else logit.detach().argmax(1)
        dec = Decoding(torch.stack(logits, 2), torch.stack(alphas, 1), torch.stack(betas, 1),
                       torch.stack(tokens, 1), torch.stack(logps, 1))
        self.last_alpha = dec.alpha.detach().view(bsz, self.length, *grid)
        self.last_beta = dec.beta.detach()
        return dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Greedy decoding: logits ``(B, K, T)``, each step fed the previous step's argmax."""
        return self.decode(x).logits

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits)`` for :func:`attn_lesson.train.fit`, teacher-forced: the mean
        cross-entropy over the ``T`` digits, plus ``ds_weight`` times :func:`doubly_stochastic`
        (soft attention); for hard attention, plus the REINFORCE term
        ``-mean_b (r_b - r_bar) sum_t log alpha_{t, s_t}`` with the reward ``r_b`` = the image's
        log-likelihood ``sum_t log p(y_t)`` and ``r_bar`` its moving average over batches
        (updated in training), minus ``entropy_weight`` times the mean entropy of ``alpha_t``."""
        dec = self.decode(x, y)
        nll = F.cross_entropy(dec.logits.float(), y, reduction="none")              # (B, T)
        loss = nll.mean()
        if self.attention == "soft" and self.ds_weight > 0:
            loss = loss + self.ds_weight * doubly_stochastic(dec.alpha)
        if self.attention == "hard":
            reward = -nll.detach().sum(1)                                           # (B,)
            advantage = reward - self.reward_baseline
            loss = loss - (advantage * dec.log_prob_locations.sum(1)).mean()
            entropy = -(dec.alpha * torch.log(dec.alpha.clamp_min(1e-12))).sum(2).mean()
            loss = loss - self.entropy_weight * entropy
            if self.training:
                with torch.no_grad():
                    self.reward_baseline.mul_(self.baseline_decay).add_(
                        (1 - self.baseline_decay) * reward.mean())
        return loss, dec.logits


class PositionHeadsCNN(nn.Module):
    """The control without a decoder: the encoder's map ``(B, D, h, w)``, flattened (so that where a
    feature lies is kept), one hidden layer ``ReLU(W vec(map))`` and ``T`` linear heads, one per
    digit position; logits ``(B, K, T)``. ``image_size`` ``(H, W)`` fixes the flattened width."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, length: int = 3,
                 image_size=(32, 96), *, widths=(16, 32, 64), depths=(1, 1, 1),
                 stem_stride: int = 2, hidden: int = 128):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("length", length), ("hidden", hidden)):
            _check_positive_int(name, v)
        image_size = tuple(image_size) if isinstance(image_size, (tuple, list)) else image_size
        if (not isinstance(image_size, tuple) or len(image_size) != 2
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_size)):
            raise ValueError(f"image_size must be a (height, width) pair of positive ints, "
                             f"got {image_size!r}")
        self.num_classes, self.length, self.image_size = num_classes, length, image_size
        self.encoder = Encoder(in_channels, widths, depths, stem_stride)
        h, w = self.encoder.grid(image_size)
        self.fc = nn.Linear(self.encoder.channels * h * w, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, num_classes) for _ in range(length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() == 4 and tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"x must have spatial size {self.image_size} (the model's image_size), "
                             f"got {tuple(x.shape[-2:])}")
        f = F.relu(self.fc(self.encoder(x).flatten(1)))
        return torch.stack([head(f) for head in self.heads], 2)


@torch.no_grad()
def sequence_scores(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                    batch_size: int = 500) -> dict:
    """Scores of a sequence reader in eval mode (greedy decoding): ``"digit"`` the per-digit
    accuracy (what ``fit`` reports), ``"sequence"`` the exact-match rate (all ``T`` digits right),
    ``"position"`` the accuracy at each position, a list of ``T``."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 2 or len(labels) != len(images):
        raise ValueError(f"labels must be a (n, T) tensor with one row per image, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else labels!r}")
    _check_positive_int("batch_size", batch_size)
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    right = torch.cat([model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                       == labels[i:i + batch_size] for i in range(0, len(images), batch_size)])
    model.train(was)
    return {"digit": right.float().mean().item(), "sequence": right.all(1).float().mean().item(),
            "position": right.float().mean(0).tolist()}


def box_mass(alpha: torch.Tensor, boxes: torch.Tensor, image_size, stride: int) -> torch.Tensor:
    """Attention mass of each step in each digit's box: ``alpha`` ``(B, T, h, w)`` (a model's
    ``last_alpha``), ``boxes`` ``(B, K, 4)`` as ``(x0, y0, x1, y1)`` pixels -> ``(B, T, K)``, the
    share of step ``t``'s weights on locations whose centre lies in box ``k``. Location ``(r, c)``
    of the map is centred on pixel ``(c * stride, r * stride)`` (strided 3x3 convolutions with
    padding 1, as in the course backbone). ``image_size`` only bounds the boxes."""
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 4:
        raise ValueError(f"alpha must be a (B, T, h, w) tensor, got "
                         f"{tuple(alpha.shape) if isinstance(alpha, torch.Tensor) else alpha!r}")
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.dim() != 3 or boxes.shape[0] != alpha.shape[0] or boxes.shape[2] != 4:
        raise ValueError(f"boxes must have shape (B, K, 4) with B = {alpha.shape[0]}, got {tuple(boxes.shape)}")
    _check_positive_int("stride", stride)
    b, t, h, w = alpha.shape
    ys = (torch.arange(h, dtype=torch.float32) * stride).clamp(max=image_size[0] - 1) + 0.5
    xs = (torch.arange(w, dtype=torch.float32) * stride).clamp(max=image_size[1] - 1) + 0.5
    x0, y0, x1, y1 = (boxes[..., i][..., None, None] for i in range(4))           # (B, K, 1, 1)
    inside = ((xs >= x0) & (xs < x1) & (ys[:, None] >= y0) & (ys[:, None] < y1)).float()  # (B, K, h, w)
    return torch.einsum("bthw,bkhw->btk", alpha.float().cpu(), inside)
