"""PyTorch implementation of the configured loss (``config.loss``).

The twin of ``gait_jax.losses.compute_loss`` for the PyTorch side of a
training-parity run: the same terms, weights and options, written directly
from their definitions with every triplet enumerated by boolean masks and
autograd for the gradients.

  triplet       OpenGait's batch-all TripletLoss (optionally with the GIL
                pair weights and class-adaptive margins): per part,
                Σ max(w_aq·d_aq - w_am·d_am + m_a, 0) / (#non-zero + 1e-9)
                over (a, q, m) with y_q = y_a (q = a included), y_m ≠ y_a.
  uniformity    log-mean-exp of -t·||μ̂_a - μ̂_b||² over class-centre pairs
                (or over inter-class sample pairs).
  pair_softmax  mean softplus((g_am - g_aq)/τ) over the triplets.
  ce            OpenGait's CrossEntropyLoss on [n, classes, parts] logits.

As in the JAX losses, an anchor's distance to itself is exactly 0 and the
square root has a zero gradient at 0. Inputs use OpenGait's layouts:
embeddings ``[n, c, p]``, logits ``[n, classes, p]``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping


def _torch():
  import torch  # pylint: disable=g-import-not-at-top
  return torch


def _safe_sqrt(x):
  """sqrt with a zero gradient where x <= 0."""
  torch = _torch()
  positive = x > 0
  return torch.where(positive, torch.sqrt(torch.where(positive, x, 1.0)),
                     torch.zeros_like(x))


def _normalize(x, eps: float = 1e-12):
  """x / max(||x||, eps) over the last axis."""
  return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def distances(e):
  """Euclidean distances [p, n, c] -> [p, n, n], 0 on the diagonal."""
  torch = _torch()
  sq = (e * e).sum(-1)  # [p, n]
  d2 = (sq[:, :, None] + sq[:, None, :]
        - 2.0 * e.matmul(e.transpose(1, 2))).clamp_min(0.0)  # [p, n, n]
  eye = torch.eye(e.shape[1], dtype=torch.bool, device=e.device)
  return torch.where(eye, torch.zeros_like(d2), _safe_sqrt(d2))


def _triplet_mask(labels):
  """[n, n, n] True for (a, q, m) with y_q = y_a and y_m ≠ y_a."""
  match = labels[:, None] == labels[None, :]  # [n, n]
  return match[:, :, None] & ~match[:, None, :]


def class_centers(u, labels):
  """Normalised centres [p, S, c] of the classes of normalised u [p, n, c],
  and the centre index of every sample [n] (classes in sorted order)."""
  torch = _torch()
  classes, inverse = torch.unique(labels, sorted=True, return_inverse=True)
  onehot = (inverse[None, :] == torch.arange(
      len(classes), device=u.device)[:, None]).to(u.dtype)  # [S, n]
  means = onehot.matmul(u) / onehot.sum(1)[:, None]  # [p, S, c]
  return _normalize(means), inverse


def adaptive_margins(e, labels, margin: float):
  """Class-adaptive margin of every anchor [p, n] (no gradient)."""
  torch = _torch()
  mu, inverse = class_centers(_normalize(e.detach()), labels)
  s = mu.shape[1]
  if s < 2:
    return torch.full(e.shape[:2], margin, dtype=e.dtype, device=e.device)
  diff = mu[:, :, None, :] - mu[:, None, :, :]  # [p, S, S, c]
  dist = _safe_sqrt((diff * diff).sum(-1))  # [p, S, S]
  eye = torch.eye(s, dtype=torch.bool, device=e.device)
  nearest = torch.where(eye, torch.full_like(dist, math.inf),
                        dist).amin(-1)  # [p, S]
  ratio = (nearest.mean(1, keepdim=True) / (nearest + 1e-6)).clamp(0.5, 2.0)
  return (margin * ratio)[:, inverse]  # [p, n]


def pair_weights(e, weight_norm: str):
  """GIL pair weights 1 + r/R, r = (1 - cos)/2 + 0.01 (no gradient)."""
  u = _normalize(e.detach())
  r = (1.0 - u.matmul(u.transpose(1, 2))) / 2.0 + 0.01  # [p, n, n]
  if weight_norm == 'global':
    r_max = r.amax()
  else:
    r_max = r.amax(dim=(1, 2), keepdim=True)
  return 1.0 + r / r_max


def triplet_loss(e, labels, *, margin: float, pair_weight: bool,
                 weight_norm: str, margin_mode: str):
  """Batch-all triplet loss of e [p, n, c]; returns (loss, nonzero [p])."""
  d = distances(e)  # [p, n, n]
  if pair_weight:
    d = d * pair_weights(e, weight_norm)
  if margin_mode == 'class_adaptive':
    m = adaptive_margins(e, labels, margin)[:, :, None, None]  # [p,n,1,1]
  else:
    m = margin
  hinge = (d[:, :, :, None] - d[:, :, None, :] + m).clamp_min(0.0)
  hinge = hinge * _triplet_mask(labels)[None].to(e.dtype)  # [p, n, n, n]
  total = hinge.sum((1, 2, 3))  # [p]
  nonzero = (hinge > 0).sum((1, 2, 3)).to(e.dtype)  # [p]
  per_part = total / (nonzero + 1e-9)
  per_part = per_part.masked_fill(nonzero == 0, 0.0)
  return per_part.mean(), nonzero


def uniformity_loss(e, labels, *, t: float, over: str):
  """Uniformity (log-mean-exp of -t·squared distance), mean over parts."""
  torch = _torch()
  u = _normalize(e)
  if over == 'centers':
    points, _ = class_centers(u, labels)
    groups = torch.arange(points.shape[1], device=e.device)
  else:
    points, groups = u, labels
  keep = groups[:, None] != groups[None, :]  # [S, S]
  if not bool(keep.any()):
    return e.sum() * 0.0
  diff = points[:, :, None, :] - points[:, None, :, :]
  logits = -t * (diff * diff).sum(-1)  # [p, S, S]
  logits = logits.masked_fill(~keep[None], -math.inf)
  per_part = torch.logsumexp(logits.flatten(1), 1) - math.log(
      float(keep.sum()))
  return per_part.mean()


def pair_softmax_loss(e, labels, *, temperature: float):
  """Mean softplus((g_am - g_aq)/τ) over the triplets, mean over parts."""
  torch = _torch()
  g = e.matmul(e.transpose(1, 2))  # [p, n, n]
  z = (g[:, :, None, :] - g[:, :, :, None]) / temperature  # [p, a, q, m]
  mask = _triplet_mask(labels)[None].to(e.dtype)
  count = mask.sum()
  per_part = (torch.nn.functional.softplus(z) * mask).sum((1, 2, 3)) / count
  return per_part.mean()


def _at_least_float32(x):
  """float32, or float64 for float64 inputs (a float64 reference run)."""
  torch = _torch()
  return x if x.dtype == torch.float64 else x.float()


def cross_entropy_loss(logits, labels, *, scale: float,
                       label_smoothing: float):
  """OpenGait's CrossEntropyLoss: logits [n, classes, p], labels [n]."""
  torch = _torch()
  target = labels[:, None].expand(-1, logits.shape[2])  # [n, p]
  return torch.nn.functional.cross_entropy(
      _at_least_float32(logits) * scale, target,
      label_smoothing=label_smoothing)


def compute_loss(embeddings, logits, labels, loss_config: Mapping[str, Any]):
  """The weighted sum of the terms of ``config.loss`` with non-zero weight.

  The terms are computed in float32 (float64 for float64 inputs).

  Args:
    embeddings: ``[n, c, p]`` float tensor (OpenGait's triplet input).
    logits: ``[n, classes, p]`` float tensor, or None for a model without a
      classifier (then ``ce.weight`` must be 0).
    labels: ``[n]`` int64 tensor.
    loss_config: the ``config.loss`` section.

  Returns:
    ``(total, metrics)``: the loss tensor and a dict of floats named like the
    JAX metrics (``'loss/total'``, ``'loss/<term>'``, ``'triplet/nonzero'``
    per part; ``'triplet/nonzero_sum'`` over the parts).

  Raises:
    ValueError: ``ce.weight > 0`` without logits.
  """
  cfg = {k: dict(loss_config[k]) for k in ('triplet', 'uniformity',
                                            'pair_softmax', 'ce')}
  e = _at_least_float32(embeddings).permute(2, 0, 1)  # [p, n, c]
  total = e.sum() * 0.0
  metrics = {}
  c = cfg['triplet']
  if c['weight'] > 0:
    value, nonzero = triplet_loss(
        e, labels, margin=float(c['margin']),
        pair_weight=bool(c['pair_weight']), weight_norm=c['weight_norm'],
        margin_mode=c['margin_mode'])
    total = total + c['weight'] * value
    metrics['loss/triplet'] = float(value.detach())
    metrics['triplet/nonzero'] = float(nonzero.mean())
    metrics['triplet/nonzero_sum'] = float(nonzero.sum())
  c = cfg['uniformity']
  if c['weight'] > 0:
    value = uniformity_loss(e, labels, t=float(c['t']), over=c['over'])
    total = total + c['weight'] * value
    metrics['loss/uniformity'] = float(value.detach())
  c = cfg['pair_softmax']
  if c['weight'] > 0:
    value = pair_softmax_loss(e, labels,
                              temperature=float(c['temperature']))
    total = total + c['weight'] * value
    metrics['loss/pair_softmax'] = float(value.detach())
  c = cfg['ce']
  if c['weight'] > 0:
    if logits is None:
      raise ValueError('loss.ce.weight > 0 but the PyTorch model returns no '
                       "training_feat['softmax']['logits'].")
    value = cross_entropy_loss(logits, labels, scale=float(c['scale']),
                               label_smoothing=float(c['label_smoothing']))
    total = total + c['weight'] * value
    metrics['loss/ce'] = float(value.detach())
  metrics['loss/total'] = float(total.detach())
  return total, metrics
