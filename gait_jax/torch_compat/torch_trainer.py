"""The PyTorch side of a training-parity run: one OpenGait-style step at a time.

`TorchTrainer` holds an OpenGait-interface model (``forward(inputs)`` with
``inputs = (ipts, labs, typs, vies, seqL)`` returning ``training_feat``), its
optimizer and scheduler (`torch_optim`) and the config's loss
(`torch_losses`), and trains it on the project's host batches the way
OpenGait's ``BaseModel.run_train`` does in float32: forward in training mode,
loss, ``zero_grad``, ``backward``, ``optimizer.step()``,
``scheduler.step()``. A float64 copy gives the float32 rounding floor of a
recipe (how far PyTorch float32 itself drifts from exact arithmetic).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from gait_jax.torch_compat import convert
from gait_jax.torch_compat import torch_losses
from gait_jax.torch_compat import torch_optim


def opengait_layout(x, parts: int, channels: int):
  """A ``[n, channels, parts]`` view of an OpenGait output.

  OpenGait since mid-2022 returns ``[n, c, p]``; older code ``[n, p, c]``,
  which is transposed when the two shapes differ.

  Raises:
    ValueError: neither layout fits.
  """
  if x is None or tuple(x.shape[1:]) == (channels, parts):
    return x
  if tuple(x.shape[1:]) == (parts, channels):
    return x.transpose(1, 2)
  raise ValueError(f'PyTorch output of shape {tuple(x.shape)}; expected '
                   f'[n, {channels}, {parts}].')


def state_rel_diff(ours, ref) -> dict[str, float]:
  """Largest per-entry ``max|ours - ref| / max|ref|`` of two modules.

  Returns:
    ``{'params': ..., 'buffers': ...}`` over the parameters and the floating
    buffers (BatchNorm statistics; None without any).
  """
  out = {}
  for kind, named in (('params', 'named_parameters'),
                      ('buffers', 'named_buffers')):
    theirs = dict(getattr(ref, named)())
    worst = None
    for key, value in getattr(ours, named)():
      if not value.is_floating_point():
        continue
      a = value.detach().cpu().double()
      b = theirs[key].detach().cpu().double()
      err = float((a - b).abs().max()) if a.numel() else 0.0
      rel = err / max(float(b.abs().max()) if b.numel() else 0.0, 1e-12)
      worst = max(worst or 0.0, rel if err else 0.0)
    out[kind] = worst
  return out


class TorchTrainer:
  """Trains a PyTorch model with the config's loss, optimizer and schedule.

  Attributes:
    module: the model (trained in place), in ``dtype``.
    shapes: ``{'embeddings': (parts, channels), 'logits': (parts, classes)}``
      of the Flax twin, to read the model's outputs.
  """

  def __init__(self, module, config, shapes: Mapping[str, tuple[int, int]],
               dtype: str = 'float32'):
    import torch  # pylint: disable=g-import-not-at-top
    self._torch = torch
    self._dtype = getattr(torch, dtype)
    self.module = module.to(self._dtype).train()
    self._device = next(module.parameters()).device
    self._loss_config = config.loss
    self.shapes = dict(shapes)
    self._optimizer, self._scheduler = torch_optim.make_optimizer(
        [p for p in module.parameters() if p.requires_grad], config.optim,
        config.schedule, config.train.num_steps)
    self._config = config

  def float64_copy(self) -> 'TorchTrainer':
    """A trainer of a float64 copy of the model in its current state."""
    return TorchTrainer(copy.deepcopy(self.module), self._config, self.shapes,
                        dtype='float64')

  def step(self, host: Mapping[str, np.ndarray]) -> dict[str, float]:
    """One update on a host batch; returns the loss metrics and ``lr``.

    A non-finite loss leaves the parameters unchanged.
    """
    torch = self._torch
    sils = torch.from_numpy(host['sils']).to(self._device)
    sils = sils.to(self._dtype) / 255.0  # [n, s, h, w]
    labels = torch.from_numpy(
        np.asarray(host['labels'], np.int64)).to(self._device)
    self._optimizer.zero_grad(set_to_none=True)
    feat = self.module(([sils], labels, None, None, None))['training_feat']
    emb = opengait_layout(feat['triplet']['embeddings'],
                          *self.shapes['embeddings'])
    logits = feat.get('softmax', {}).get('logits')
    if logits is not None and 'logits' in self.shapes:
      logits = opengait_layout(logits, *self.shapes['logits'])
    loss, metrics = torch_losses.compute_loss(emb, logits, labels,
                                              self._loss_config)
    metrics['lr'] = float(self._optimizer.param_groups[0]['lr'])
    if not np.isfinite(metrics['loss/total']):
      return metrics
    loss.backward()
    self._optimizer.step()
    self._scheduler.step()
    return metrics

  def variables(self, model_name: str, model_config: Mapping[str, Any],
                bnneck_layout: str) -> dict[str, Any]:
    """The model's current state converted to Flax variables."""
    state = {k: v.detach().cpu().clone()
             for k, v in self.module.state_dict().items()}
    return convert.load_opengait_checkpoint(state, model_name, model_config,
                                            bnneck_layout)
