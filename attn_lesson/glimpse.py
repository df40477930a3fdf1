"""Recurrent Models of Visual Attention (RAM, Mnih et al., NeurIPS 2014): hard attention.

RAM never sees the whole image. At each of ``T`` steps it takes one *glimpse* at a location
``l_t`` and decides where to look next; after the last glimpse it names the class.

* :class:`GlimpseSensor` ``rho(x, l)``: ``k`` square patches centred at ``l``, the first ``g``
  pixels wide, each next one twice as wide, every one resized to ``g x g`` by averaging
  blocks of pixels, so the view is sharp at the centre and coarse around it (a retina).
* :class:`GlimpseNetwork`: ``g_t = ReLU(W_1 h_g + W_2 h_l)`` with ``h_g = ReLU(Linear(rho))``,
  ``h_l = ReLU(Linear(l))`` (what was seen, and where).
* :class:`RAM`: core RNN ``h_{t+1} = ReLU(W_h h_t + W_g g_t + b)`` (``nn.RNNCell``); location
  policy ``l_t ~ N(mu_t, sigma^2 I)`` with ``mu_t = tanh(W_l h_t + b_l)`` and a **fixed**
  ``sigma``; a baseline ``b_t = W_b h_t + c`` (a learned estimate of the expected reward); a
  classifier ``Linear(h_T)``. ``random_locations=True`` gives the control of the same network
  with glimpse locations drawn uniformly, trained by classification alone.
* :meth:`RAM.objective` is the **hybrid loss** that :func:`attn_lesson.train.fit` minimises
  when a model defines it: cross-entropy for classifier, core and glimpse network,
  REINFORCE with the baseline's advantage for the location policy, and a squared error that
  fits the baseline to the reward.

Coordinates: a location ``l = (x, y)`` in ``[-1, 1]^2`` is in the normalised image
coordinates of ``F.affine_grid`` with ``align_corners=False``: ``(-1, -1)`` is the top-left
*corner* of the image, ``(0, 0)`` its centre, ``(1, 1)`` the bottom-right corner; a pixel
``(row i, column j)`` of an ``H x W`` image has its centre at ``x = (2j + 1)/W - 1``,
``y = (2i + 1)/H - 1``. Parts of a patch outside the image read zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import _check_positive_int


def _check_locations(l, batch: int, name: str = "l") -> None:
    if not isinstance(l, torch.Tensor) or l.shape != (batch, 2):
        shape = tuple(l.shape) if isinstance(l, torch.Tensor) else type(l).__name__
        raise ValueError(f"{name} must be a tensor of shape (B, 2) = ({batch}, 2) holding (x, y) "
                         f"in [-1, 1], got {shape}")


def _check_images(x, channels: int, size=None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (B, {channels}, H, W), got {shape}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"x must have spatial size {tuple(size)} (the model's image_size), "
                         f"got {tuple(x.shape[-2:])}")


class GlimpseSensor(nn.Module):
    """The retina ``rho(x, l)``: ``k`` patches centred at ``l``, of sides ``g, 2g, ..., 2^(k-1) g``
    pixels, each resized to ``g x g`` by averaging ``2^j x 2^j`` blocks (patch ``j``).

    ``forward(x, l)``: ``x`` ``(B, C, H, W)``, ``l`` ``(B, 2)`` as ``(x, y)`` in ``[-1, 1]``
    (module docstring) -> ``(B, k, C, g, g)``.

    How it is vectorised: the image pyramid ``P_j = avgpool_{2^j}(x)`` (``H/2^j x W/2^j``) is
    padded with zeros to ``H x W`` (top-left aligned) and stacked into one ``(B k, C, H, W)``
    tensor; patch ``j`` is then a ``g x g`` grid of *pyramid pixels* around ``l``, which a
    single ``F.grid_sample`` call reads for all ``B k`` patches at once, with the affine map
    ``theta_j = [[g/W, 0, (l_x + 1)/2^j - 1], [0, g/H, (l_y + 1)/2^j - 1]]``. When the patch is
    aligned with the pyramid's blocks (its centre on a multiple of ``2^(k-1)`` pixels, ``g``
    even) the result equals cropping the ``2^j g``-pixel square and average-pooling it; in
    between, it interpolates bilinearly between block averages.
    """

    def __init__(self, patch: int = 8, scales: int = 3):
        super().__init__()
        _check_positive_int("patch", patch)
        _check_positive_int("scales", scales)
        if scales > 6:
            raise ValueError(f"scales must be between 1 and 6 (patches up to 32 g wide), got {scales!r}")
        self.patch, self.scales = patch, scales

    def extra_repr(self) -> str:
        return f"patch={self.patch}, scales={self.scales}"

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, k, C, H, W)``: level ``j`` is ``avgpool_{2^j}(x)`` in the top-left corner, zeros
        elsewhere. ``H`` and ``W`` must be divisible by ``2^(k-1)``."""
        _check_images(x, x.shape[1] if isinstance(x, torch.Tensor) and x.dim() == 4 else -1)
        h, w = x.shape[-2:]
        f = 2 ** (self.scales - 1)
        if h % f or w % f:
            raise ValueError(f"x's height and width must be divisible by 2^(scales-1) = {f}, "
                             f"got {h}x{w}")
        levels = [x]
        for j in range(1, self.scales):
            p = F.avg_pool2d(x, 2 ** j)
            levels.append(F.pad(p, (0, w - p.shape[-1], 0, h - p.shape[-2])))
        return torch.stack(levels, 1)

    def thetas(self, l: torch.Tensor, size) -> torch.Tensor:
        """``(B, k, 2, 3)``: the affine map of each patch into the stacked pyramid."""
        h, w = size
        k = torch.arange(self.scales, device=l.device, dtype=l.dtype)
        inv = (0.5 ** k)[None, :]                                            # 1 / 2^j
        theta = l.new_zeros(l.shape[0], self.scales, 2, 3)
        theta[..., 0, 0] = self.patch / w
        theta[..., 1, 1] = self.patch / h
        theta[..., 0, 2] = (l[:, None, 0] + 1) * inv - 1
        theta[..., 1, 2] = (l[:, None, 1] + 1) * inv - 1
        return theta

    def forward(self, x: torch.Tensor, l: torch.Tensor, pyramid: torch.Tensor | None = None) -> torch.Tensor:
        """``rho(x, l)`` of shape ``(B, k, C, g, g)``; pass ``pyramid`` (from :meth:`pyramid`) to
        reuse it over several glimpses of the same images."""
        _check_images(x, x.shape[1] if isinstance(x, torch.Tensor) and x.dim() == 4 else -1)
        b, c, h, w = x.shape
        _check_locations(l, b)
        pyr = self.pyramid(x) if pyramid is None else pyramid
        if pyr.shape != (b, self.scales, c, h, w):
            raise ValueError(f"pyramid must have shape {(b, self.scales, c, h, w)}, got {tuple(pyr.shape)}")
        theta = self.thetas(l.to(x.dtype), (h, w)).reshape(b * self.scales, 2, 3)
        grid = F.affine_grid(theta, (b * self.scales, c, self.patch, self.patch), align_corners=False)
        out = F.grid_sample(pyr.reshape(b * self.scales, c, h, w), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        return out.view(b, self.scales, c, self.patch, self.patch)


class GlimpseNetwork(nn.Module):
    """``g = ReLU(W_1 h_g + W_2 h_l)`` with ``h_g = ReLU(Linear(vec rho(x, l)))`` (what) and
    ``h_l = ReLU(Linear(l))`` (where); ``(B, C, H, W), (B, 2) -> (B, out_dim)``."""

    def __init__(self, in_channels: int = 1, patch: int = 8, scales: int = 3,
                 what_dim: int = 128, where_dim: int = 128, out_dim: int = 256):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("what_dim", what_dim),
                        ("where_dim", where_dim), ("out_dim", out_dim)):
            _check_positive_int(name, v)
        self.sensor = GlimpseSensor(patch, scales)
        self.in_channels = in_channels
        self.what = nn.Linear(scales * in_channels * patch * patch, what_dim)
        self.where = nn.Linear(2, where_dim)
        self.what_out = nn.Linear(what_dim, out_dim)
        self.where_out = nn.Linear(where_dim, out_dim)

    def forward(self, x: torch.Tensor, l: torch.Tensor, pyramid: torch.Tensor | None = None) -> torch.Tensor:
        _check_images(x, self.in_channels)
        patches = self.sensor(x, l, pyramid).flatten(1)                       # (B, k C g g)
        h_g = F.relu(self.what(patches))
        h_l = F.relu(self.where(l))
        return F.relu(self.what_out(h_g) + self.where_out(h_l))


@dataclass
class Rollout:
    """One pass of :class:`RAM` over a batch, step by step (``T`` glimpses).

    ``logits`` ``(B, K)``; ``locations`` ``(B, T, 2)`` the glimpse centres used (after clamping
    to ``[-1, 1]``); ``means`` ``(B, T, 2)`` the policy's means ``mu_t``; ``log_probs`` ``(B, T)``
    ``log pi(l_t | h_t)`` of each sampled location (zeros for the random control and in eval
    mode, where nothing is sampled from the policy); ``baselines`` ``(B, T)`` ``b_t``."""

    logits: torch.Tensor
    locations: torch.Tensor
    means: torch.Tensor
    log_probs: torch.Tensor
    baselines: torch.Tensor


class RAM(nn.Module):
    """The recurrent attention model.

    With ``h_0 = 0``, for ``t = 0 .. T-1``::

        mu_t = tanh(W_l h_t + b_l)                      location policy (input detached)
        l_t  ~ N(mu_t, std^2 I)  (training),  l_t = mu_t  (eval),  clamped to [-1, 1]
        b_t  = W_b h_t + c                              baseline (input detached)
        g_t  = GlimpseNetwork(x, l_t)                   (B, glimpse_dim)
        h_{t+1} = ReLU(W_h h_t + W_g g_t + b)           core, nn.RNNCell, (B, hidden)
    and ``logits = Linear(h_T)`` ``(B, num_classes)``. The policy's layer starts at zero
    (weights and bias), so at initialisation every mean is the centre ``(0, 0)`` (like the
    spatial transformer's identity start); with ``reinforce_weight=0`` it stays there. The
    first location ``mu_0 = tanh(b_l)`` is a learned constant (``h_0 = 0``).
    ``random_locations=True``: ``l_t ~ U([-1, 1]^2)`` at every step, training and
    eval, and :meth:`objective` is the cross-entropy alone.

    Parameters: ``glimpses`` ``T``; ``patch`` ``g`` and ``scales`` ``k`` of the sensor; ``std``
    the policy's fixed standard deviation in ``[-1, 1]`` units (``2/W`` per pixel);
    ``reinforce_weight`` ``lambda`` of :meth:`objective`; ``image_size`` ``(H, W)`` checked on
    every input.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size=(60, 60), *,
                 glimpses: int = 6, patch: int = 8, scales: int = 3, std: float = 0.1,
                 hidden: int = 256, glimpse_dim: int = 256, what_dim: int = 128, where_dim: int = 128,
                 reinforce_weight: float = 1.0, random_locations: bool = False):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("glimpses", glimpses), ("hidden", hidden), ("glimpse_dim", glimpse_dim)):
            _check_positive_int(name, v)
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        image_size = tuple(image_size) if isinstance(image_size, (tuple, list)) else image_size
        if (not isinstance(image_size, tuple) or len(image_size) != 2
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_size)):
            raise ValueError(f"image_size must be an int or a (height, width) pair of positive ints, "
                             f"got {image_size!r}")
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0 < std <= 2:
            raise ValueError(f"std must be a number in (0, 2] ([-1, 1] units), got {std!r}")
        if isinstance(reinforce_weight, bool) or not isinstance(reinforce_weight, (int, float)) \
                or not reinforce_weight >= 0:
            raise ValueError(f"reinforce_weight must be a number >= 0, got {reinforce_weight!r}")
        if not isinstance(random_locations, bool):
            raise ValueError(f"random_locations must be True or False, got {random_locations!r}")
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.glimpses, self.std = glimpses, float(std)
        self.reinforce_weight, self.random_locations = float(reinforce_weight), random_locations
        self.glimpse = GlimpseNetwork(in_channels, patch, scales, what_dim, where_dim, glimpse_dim)
        f = 2 ** (scales - 1)
        if image_size[0] % f or image_size[1] % f:
            raise ValueError(f"image_size {image_size} must be divisible by 2^(scales-1) = {f}")
        self.core = nn.RNNCell(glimpse_dim, hidden, nonlinearity="relu")
        self.locator = nn.Linear(hidden, 2)
        nn.init.zeros_(self.locator.weight)            # mu_t = 0 at the start: every glimpse at the centre
        nn.init.zeros_(self.locator.bias)
        self.baseline = nn.Linear(hidden, 1)
        self.classifier = nn.Linear(hidden, num_classes)
        self.hidden = hidden

    def extra_repr(self) -> str:
        return (f"glimpses={self.glimpses}, std={self.std}, reinforce_weight={self.reinforce_weight}, "
                f"random_locations={self.random_locations}")

    def rollout(self, x: torch.Tensor, locations: torch.Tensor | None = None) -> Rollout:
        """Run the ``T`` glimpses on ``x`` ``(B, C, H, W)`` and record every step.

        ``locations`` ``(B, T, 2)`` in ``[-1, 1]`` (optional) replaces the policy: glimpse ``t``
        goes to ``locations[:, t]`` whatever the policy's mean, and nothing is sampled (log
        probabilities zero). It asks what the same trained network scores with other glimpses,
        e.g. all at the centre, uniformly random, or on the digit."""
        _check_images(x, self.in_channels, self.image_size)
        b = x.shape[0]
        if locations is not None:
            if (not isinstance(locations, torch.Tensor) or locations.shape != (b, self.glimpses, 2)
                    or not torch.isfinite(locations).all()):
                got = tuple(locations.shape) if isinstance(locations, torch.Tensor) else type(locations).__name__
                raise ValueError(f"locations must be a finite tensor of shape (B, T, 2) = "
                                 f"({b}, {self.glimpses}, 2), got {got}")
        x = x.float()
        pyr = self.glimpse.sensor.pyramid(x)
        h = x.new_zeros(b, self.hidden)
        locs, means, logps, bases = [], [], [], []
        for t in range(self.glimpses):
            hd = h.detach()                                  # policy and baseline do not train the core
            mu = torch.tanh(self.locator(hd))
            bases.append(self.baseline(hd).squeeze(1))
            if locations is not None:
                l, logp = locations[:, t].to(x), x.new_zeros(b)
            elif self.random_locations:
                l = torch.rand(b, 2, device=x.device) * 2 - 1
                logp = x.new_zeros(b)
            elif self.training:
                policy = torch.distributions.Normal(mu, self.std)
                l = policy.sample()
                logp = policy.log_prob(l).sum(1)
            else:
                l, logp = mu.detach(), x.new_zeros(b)
            l = l.clamp(-1, 1)
            locs.append(l), means.append(mu), logps.append(logp)
            h = self.core(self.glimpse(x, l, pyr), h)
        return Rollout(self.classifier(h), torch.stack(locs, 1), torch.stack(means, 1),
                       torch.stack(logps, 1), torch.stack(bases, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` after ``T`` glimpses (see :meth:`rollout`)."""
        return self.rollout(x).logits

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits)`` for :func:`attn_lesson.train.fit`: the hybrid loss on one batch
        (:func:`hybrid_loss`; the cross-entropy alone for the random control)."""
        r = self.rollout(x)
        if self.random_locations:
            return F.cross_entropy(r.logits.float(), y), r.logits
        return hybrid_loss(r, y, self.reinforce_weight)["loss"], r.logits


def reinforce_surrogate(log_probs: torch.Tensor, reward: torch.Tensor,
                        baseline: torch.Tensor | float | None = None) -> torch.Tensor:
    """The score-function (REINFORCE) surrogate ``-mean_b sum_t log pi(l_t^b) (R^b - b_t^b)``.

    ``log_probs`` ``(B, T)`` (or ``(B,)``), ``reward`` ``(B,)``, ``baseline`` ``None`` (0), a
    number, or a tensor broadcastable to ``log_probs``; reward and baseline are detached, so
    the surrogate's gradient is the REINFORCE estimate of ``-grad E[R]``, averaged over the
    batch."""
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() not in (1, 2):
        raise ValueError(f"log_probs must be a (B,) or (B, T) tensor, got "
                         f"{tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else log_probs!r}")
    if not isinstance(reward, torch.Tensor) or reward.shape != log_probs.shape[:1]:
        raise ValueError(f"reward must be a tensor of shape (B,) = ({log_probs.shape[0]},), got "
                         f"{tuple(reward.shape) if isinstance(reward, torch.Tensor) else reward!r}")
    lp = log_probs if log_probs.dim() == 2 else log_probs[:, None]
    adv = reward.detach()[:, None]
    if baseline is not None:
        b = baseline.detach() if isinstance(baseline, torch.Tensor) else torch.as_tensor(float(baseline))
        if b.dim() == 1:
            b = b[:, None]
        adv = adv - b
    return -(lp * adv).sum(1).mean()


def hybrid_loss(r: Rollout, y: torch.Tensor, reinforce_weight: float = 1.0) -> dict:
    """The hybrid loss of RAM on a rollout ``r`` with labels ``y`` ``(B,)``:

    ``loss = CE(logits, y) + lambda * REINFORCE + MSE(b, R)``, with the reward ``R = 1`` when the
    class is right (0 otherwise), the REINFORCE term
    ``-mean_b sum_t log pi(l_t | h_t) (R - b_t)`` (advantage detached) and the baseline fitted by
    ``mean_{b,t} (b_t - R)^2``. Returns a dict with ``loss`` and its parts ``ce``, ``reinforce``,
    ``baseline_mse`` and the mean ``reward``."""
    if not isinstance(y, torch.Tensor) or y.shape != r.logits.shape[:1]:
        raise ValueError(f"y must be a tensor of shape (B,) = ({r.logits.shape[0]},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else y!r}")
    if isinstance(reinforce_weight, bool) or not isinstance(reinforce_weight, (int, float)) \
            or not reinforce_weight >= 0:
        raise ValueError(f"reinforce_weight must be a number >= 0, got {reinforce_weight!r}")
    ce = F.cross_entropy(r.logits.float(), y)
    reward = (r.logits.detach().argmax(1) == y).float()
    rl = reinforce_surrogate(r.log_probs, reward, r.baselines)
    mse = F.mse_loss(r.baselines.float(), reward[:, None].expand_as(r.baselines))
    return {"loss": ce + reinforce_weight * rl + mse, "ce": ce, "reinforce": rl,
            "baseline_mse": mse, "reward": reward.mean()}


def gaussian_toy_gradient(mu: torch.Tensor, std: float, target: torch.Tensor, width: float) -> torch.Tensor:
    """Exact ``d E[R] / d mu`` for the toy policy ``a ~ N(mu, std^2 I)`` (``mu`` ``(D,)``) with the
    reward ``R(a) = exp(-|a - target|^2 / (2 width^2))``: per coordinate the Gaussian integral
    gives ``E[R] = prod_d (width / s) exp(-(mu_d - target_d)^2 / (2 s^2))``, ``s^2 = width^2 +
    std^2``, so ``grad E[R] = -E[R] (mu - target) / s^2``."""
    for name, v in (("std", std), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if not isinstance(mu, torch.Tensor) or mu.dim() != 1 or not isinstance(target, torch.Tensor) \
            or target.shape != mu.shape:
        raise ValueError("mu and target must be 1-D tensors of the same shape (D,)")
    s2 = width ** 2 + std ** 2
    expected = torch.prod(width / math.sqrt(s2) * torch.exp(-(mu - target) ** 2 / (2 * s2)))
    return -expected * (mu - target) / s2
