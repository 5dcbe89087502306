"""PyTorch optimizer and learning-rate scheduler of a config.

The twin of ``gait_jax.optim`` for the PyTorch side of a training-parity
run, built the way OpenGait builds them: ``torch.optim.SGD`` / ``Adam`` with
their own ``weight_decay`` (L2 added to the gradient) over every parameter
that requires a gradient, and a scheduler stepped once per update:
``MultiStepLR`` for 'multistep', ``LambdaLR`` with timm's warm-up + cosine
formula (written here in plain Python) for 'cosine', a constant
``LambdaLR`` for 'constant'.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping


def cosine_factor(lr: float, total_steps: int, warmup_steps: int,
                  warmup_init_lr: float, min_lr: float
                  ) -> Callable[[int], float]:
  """``t -> lr(t) / lr`` of timm's ``CosineLRScheduler`` (no warm-up prefix).

  Linear warm-up from ``warmup_init_lr`` over ``warmup_steps`` updates; the
  cosine from ``lr`` to ``min_lr`` is measured from update 0 and stays at
  ``min_lr`` after ``total_steps``.
  """

  def factor(t: int) -> float:
    if t < warmup_steps:
      rate = warmup_init_lr + t * (lr - warmup_init_lr) / max(warmup_steps, 1)
    elif t >= total_steps:
      rate = min_lr
    else:
      rate = min_lr + 0.5 * (lr - min_lr) * (
          1.0 + math.cos(math.pi * t / total_steps))
    return rate / lr

  return factor


def make_optimizer(params: Iterable[Any], optim_cfg: Mapping[str, Any],
                   schedule_cfg: Mapping[str, Any], total_steps: int):
  """``(optimizer, scheduler)`` of ``config.optim`` and ``config.schedule``.

  Args:
    params: the parameters to train (OpenGait passes those with
      ``requires_grad``).
    optim_cfg: the ``config.optim`` section.
    schedule_cfg: the ``config.schedule`` section.
    total_steps: ``config.train.num_steps`` (the cosine's length).

  Returns:
    A ``torch.optim`` optimizer and an ``LRScheduler`` to step after every
    ``optimizer.step()``.

  Raises:
    ValueError: unknown optimizer or schedule name.
  """
  import torch  # pylint: disable=g-import-not-at-top
  name, lr = optim_cfg['name'], float(optim_cfg['lr'])
  decay = float(optim_cfg['weight_decay'])
  params = list(params)
  if name == 'sgd':
    optimizer = torch.optim.SGD(params, lr=lr,
                                momentum=float(optim_cfg['momentum']),
                                nesterov=bool(optim_cfg['nesterov']),
                                weight_decay=decay)
  elif name == 'adam':
    optimizer = torch.optim.Adam(
        params, lr=lr, betas=(float(optim_cfg['b1']), float(optim_cfg['b2'])),
        eps=float(optim_cfg['eps']), weight_decay=decay)
  else:
    raise ValueError(f'Unknown optim.name={name!r}; valid: sgd, adam.')

  schedule = schedule_cfg['name']
  lr_scheduler = torch.optim.lr_scheduler
  if schedule == 'constant':
    scheduler = lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)
  elif schedule == 'multistep':
    scheduler = lr_scheduler.MultiStepLR(
        optimizer, milestones=sorted(int(m) for m in
                                     schedule_cfg['milestones']),
        gamma=float(schedule_cfg['gamma']))
  elif schedule == 'cosine':
    scheduler = lr_scheduler.LambdaLR(optimizer, cosine_factor(
        lr, int(total_steps), int(schedule_cfg['warmup_steps']),
        float(schedule_cfg['warmup_init_lr']), float(schedule_cfg['min_lr'])))
  else:
    raise ValueError(f'Unknown schedule.name={schedule!r}; valid: constant, '
                     'multistep, cosine.')
  return optimizer, scheduler
