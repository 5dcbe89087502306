"""Optimizers and learning-rate schedules with PyTorch semantics.

* Weight decay is PyTorch's L2 form: ``wd * param`` is added to the gradient
  before momentum / Adam moments, on every parameter (BatchNorm and ``fc_bin``
  included), as ``torch.optim.SGD/Adam(weight_decay=...)`` do.
* Schedules are functions of the update count ``t`` (0-indexed), the count
  the optimizer state carries: ``multistep`` uses ``lr * gamma ** #{m <= t}``
  like ``MultiStepLR`` stepped once per update; ``cosine`` follows timm's
  ``CosineLRScheduler(t_initial, lr_min, warmup_t, warmup_lr_init)`` stepped
  with the iteration number.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax.numpy as jnp
import optax

OPTIMIZERS = ('sgd', 'adam')
SCHEDULES = ('constant', 'multistep', 'cosine')


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


def make_schedule(optim_cfg: Mapping[str, Any],
                  schedule_cfg: Mapping[str, Any],
                  total_steps: int) -> optax.Schedule:
  """The learning-rate schedule named by ``schedule_cfg.name``."""
  name, lr = schedule_cfg['name'], float(optim_cfg['lr'])
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
  raise ValueError(f'Unknown schedule.name={name!r}; valid: {SCHEDULES}.')


def make_optimizer(optim_cfg: Mapping[str, Any],
                   schedule: Callable[[Any], Any]
                   ) -> optax.GradientTransformation:
  """SGD (momentum, optional Nesterov) or Adam with PyTorch L2 weight decay."""
  name = optim_cfg['name']
  decay = optax.add_decayed_weights(float(optim_cfg['weight_decay']))
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
