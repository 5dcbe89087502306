"""Optimizers and learning-rate schedules with PyTorch semantics.

* Weight decay of ``sgd`` and ``adam`` is PyTorch's L2 form: ``wd * param``
  is added to the gradient before momentum / Adam moments, on every parameter
  (BatchNorm and ``fc_bin`` included), as ``torch.optim.SGD/Adam(
  weight_decay=...)`` do; ``adamw`` decays decoupled, ``param -= lr * wd *
  param`` next to the Adam step, as ``torch.optim.AdamW``.
* Schedules are functions of the update count ``t`` (0-indexed), the count
  the optimizer state carries: ``multistep`` uses ``lr * gamma ** #{m <= t}``
  like ``MultiStepLR`` stepped once per update; ``cosine`` follows timm's
  ``CosineLRScheduler(t_initial, lr_min, warmup_t, warmup_lr_init)`` stepped
  with the iteration number; ``stepped_cosine`` is OpenGait SwinGait's
  ``adjust_learning_rate`` (the cosine updated every ``step_every`` steps).
* Parameter groups (``optim.param_groups``, PyTorch's ``param_groups``): a
  tuple of ``(regex, lr_mult, weight_decay)``; a parameter belongs to the
  first group whose regex ``re.search``-matches its '/'-joined path (e.g.
  ``transformer/layers/0/blocks/1/norm1/scale``), others to the default
  group. A group trains with base rate ``lr * lr_mult`` (its schedule is
  built from that rate, as PyTorch schedulers scale each group's
  ``initial_lr``, floors included) and weight decay ``weight_decay`` (None:
  ``optim.weight_decay``). A regex that matches no parameter is an error.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ('sgd', 'adam', 'adamw')
SCHEDULES = ('constant', 'multistep', 'cosine', 'stepped_cosine')
DEFAULT_GROUP = 'default'


def multistep_schedule(lr: float, milestones, gamma: float = 0.1
                       ) -> optax.Schedule:
  """``lr * gamma ** (number of milestones <= count)``."""
  marks = jnp.asarray(sorted(int(m) for m in milestones) or [2**31 - 1],
                      jnp.int32)

  def schedule(count):
    passed = jnp.sum(jnp.asarray(count, jnp.int32) >= marks)
    return lr * jnp.asarray(gamma, jnp.float32) ** passed
  return schedule


def cosine_schedule(lr: float, total_steps: int, *, warmup_steps: int = 0,
                    warmup_init_lr: float = 0.0, min_lr: float = 0.0
                    ) -> optax.Schedule:
  """timm-style cosine: linear warm-up, then cosine over ``t / total``.

  As in timm's ``CosineLRScheduler`` without ``warmup_prefix``, the cosine
  phase is measured from step 0 (not from the end of warm-up), and after
  ``total_steps`` the rate stays at ``min_lr``.
  """

  def schedule(count):
    t = jnp.asarray(count, jnp.float32)
    warm = warmup_init_lr + t * (lr - warmup_init_lr) / max(warmup_steps, 1)
    cos = min_lr + 0.5 * (lr - min_lr) * (1 + jnp.cos(jnp.pi * t / total_steps))
    cos = jnp.where(t >= total_steps, min_lr, cos)
    return jnp.where(t < warmup_steps, warm, cos)
  return schedule


def stepped_cosine_schedule(lr: float, total_steps: int, *,
                            step_every: int = 1000, min_lr: float = 1e-6
                            ) -> optax.Schedule:
  """OpenGait SwinGait's ``adjust_learning_rate``.

  Every ``step_every`` steps (from step 0) the rate is set to
  ``max(lr * (1 + cos(pi * t / total_steps)) / 2, min_lr)`` and held; from
  ``total_steps`` on it is ``min_lr``.
  """

  def schedule(count):
    t = jnp.asarray(count, jnp.int32)
    held = (t // step_every * step_every).astype(jnp.float32)
    cos = lr * 0.5 * (1 + jnp.cos(jnp.pi * held / total_steps))
    return jnp.where(t >= total_steps, jnp.float32(min_lr),
                     jnp.maximum(cos, min_lr))
  return schedule


def make_schedule(optim_cfg: Mapping[str, Any],
                  schedule_cfg: Mapping[str, Any],
                  total_steps: int) -> optax.Schedule:
  """The learning-rate schedule named by ``schedule_cfg.name``.

  ``schedule_cfg.total_steps`` (if present and > 0) replaces ``total_steps``
  as the length of the cosine schedules (SwinGait: 60k of 80k steps).
  """
  name, lr = schedule_cfg['name'], float(optim_cfg['lr'])
  total_steps = int(schedule_cfg.get('total_steps') or total_steps)
  if name == 'constant':
    return optax.constant_schedule(lr)
  if name == 'multistep':
    return multistep_schedule(lr, schedule_cfg['milestones'],
                              schedule_cfg['gamma'])
  if name == 'cosine':
    return cosine_schedule(lr, total_steps,
                           warmup_steps=int(schedule_cfg['warmup_steps']),
                           warmup_init_lr=float(schedule_cfg['warmup_init_lr']),
                           min_lr=float(schedule_cfg['min_lr']))
  if name == 'stepped_cosine':
    return stepped_cosine_schedule(
        lr, total_steps, step_every=int(schedule_cfg['step_every']),
        min_lr=float(schedule_cfg['min_lr']))
  raise ValueError(f'Unknown schedule.name={name!r}; valid: {SCHEDULES}.')


def param_group_labels(params: Any, groups: Sequence[Sequence[Any]]) -> Any:
  """The group label of every parameter: ``str(i)`` or ``DEFAULT_GROUP``.

  Args:
    params: the parameter tree.
    groups: ``(regex, lr_mult, weight_decay)`` entries (the module doc).

  Returns:
    A tree of labels with the structure of ``params``.

  Raises:
    ValueError: a regex that matches no parameter (the message lists some
      parameter paths).
  """
  patterns = [re.compile(g[0]) for g in groups]
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = ['/'.join(str(getattr(k, 'key', k)) for k in path)
           for path, _ in flat]
  labels, used = [], set()
  for path in paths:
    hit = next((i for i, p in enumerate(patterns) if p.search(path)), None)
    used.add(hit)
    labels.append(DEFAULT_GROUP if hit is None else str(hit))
  unused = [i for i in range(len(groups)) if i not in used]
  if unused:
    shown = ', '.join(paths[:8]) + (', ...' if len(paths) > 8 else '')
    raise ValueError(
        'optim.param_groups ' + '; '.join(
            f'[{i}] {groups[i][0]!r}' for i in unused) +
        f' match no parameter (first-match-wins over paths like {shown}).')
  return jax.tree_util.tree_unflatten(treedef, labels)


def make_optimizer(optim_cfg: Mapping[str, Any],
                   schedule: Callable[[Any], Any],
                   group_schedule: Optional[
                       Callable[[float], optax.Schedule]] = None
                   ) -> optax.GradientTransformation:
  """The optimizer of ``optim_cfg``, over its parameter groups if any.

  Args:
    optim_cfg: the ``optim`` section.
    schedule: the learning-rate schedule of the default group.
    group_schedule: ``lr -> schedule`` for a group with base rate ``lr``;
      required when ``optim_cfg.param_groups`` is not empty (``build`` gives
      it).

  Returns:
    The transformation; without parameter groups exactly the plain optimizer
    (same state structure as before groups existed).
  """
  groups = tuple(optim_cfg.get('param_groups') or ())
  wd = float(optim_cfg['weight_decay'])
  if not groups:
    return _optimizer(optim_cfg, schedule, wd)
  if group_schedule is None:
    raise ValueError('optim.param_groups needs group_schedule (use '
                     'experiment.optimizer_from).')
  lr = float(optim_cfg['lr'])
  txs = {DEFAULT_GROUP: _optimizer(optim_cfg, schedule, wd)}
  for i, group in enumerate(groups):
    if len(group) != 3:
      raise ValueError(f'optim.param_groups[{i}] = {group!r}; expected '
                       '(regex, lr_mult, weight_decay or None).')
    _, mult, decay = group
    txs[str(i)] = _optimizer(optim_cfg, group_schedule(lr * float(mult)),
                             wd if decay is None else float(decay))
  return optax.multi_transform(
      txs, lambda params: param_group_labels(params, groups))


def _optimizer(optim_cfg: Mapping[str, Any], schedule: Callable[[Any], Any],
               weight_decay: float) -> optax.GradientTransformation:
  """SGD (momentum, optional Nesterov) or Adam with PyTorch L2 weight decay,
  or AdamW (decoupled decay)."""
  name = optim_cfg['name']
  decay = optax.add_decayed_weights(weight_decay)
  if name == 'adamw':  # optax.adamw: decay next to the Adam step, times lr.
    return optax.chain(
        optax.scale_by_adam(b1=float(optim_cfg['b1']),
                            b2=float(optim_cfg['b2']),
                            eps=float(optim_cfg['eps'])),
        decay, optax.scale_by_learning_rate(schedule))
  if name == 'sgd':
    return optax.chain(
        decay,
        optax.sgd(schedule, momentum=float(optim_cfg['momentum']) or None,
                  nesterov=bool(optim_cfg['nesterov'])))
  if name == 'adam':
    return optax.chain(
        decay,
        optax.scale_by_adam(b1=float(optim_cfg['b1']),
                            b2=float(optim_cfg['b2']),
                            eps=float(optim_cfg['eps'])),
        optax.scale_by_learning_rate(schedule))
  raise ValueError(f'Unknown optim.name={name!r}; valid: {OPTIMIZERS}.')
