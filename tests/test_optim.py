"""Optimizers and schedules against PyTorch's own (50 steps, same problem)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from gait_jax import experiment
from gait_jax import optim

STEPS = 50


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  return {
      'w': rng.normal(size=(6, 4)).astype(np.float32),
      'bn_scale': (1 + 0.02 * rng.normal(size=(4,))).astype(np.float32),
      'fc_bin': rng.normal(size=(3, 4, 5)).astype(np.float32) * 0.1,
  }, rng.normal(size=(8, 6)).astype(np.float32)


def _loss_jax(params, x):
  h = jnp.tanh(x @ params['w']) * params['bn_scale']  # [8, 4]
  out = jnp.einsum('nc,pcd->npd', h, params['fc_bin'])
  return jnp.mean(jnp.square(out - 0.3))


def _loss_torch(params, x):
  h = torch.tanh(x @ params['w']) * params['bn_scale']
  out = torch.einsum('nc,pcd->npd', h, params['fc_bin'])
  return torch.mean(torch.square(out - 0.3))


def _run_jax(optim_cfg, schedule_cfg, total):
  init, x = _problem()
  tx, schedule = experiment.optimizer_from(optim_cfg, schedule_cfg, total)
  params = jax.tree.map(jnp.asarray, init)
  state = tx.init(params)
  lrs = []

  @jax.jit
  def step(params, state, count):
    grads = jax.grad(_loss_jax)(params, x)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, schedule(count)

  for t in range(STEPS):
    params, state, lr = step(params, state, t)
    lrs.append(float(lr))
  return jax.device_get(params), np.array(lrs)


def _run_torch(make_opt, make_sched):
  init, x = _problem()
  params = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
  opt = make_opt(list(params.values()))
  sched = make_sched(opt)
  lrs = []
  for t in range(STEPS):
    lrs.append(opt.param_groups[0]['lr'])
    opt.zero_grad()
    _loss_torch(params, torch.tensor(x)).backward()
    opt.step()
    sched(t)
  return {k: v.detach().numpy() for k, v in params.items()}, np.array(lrs)


def _cfg(**kw):
  base = dict(name='sgd', lr=0.1, momentum=0.9, nesterov=False,
              weight_decay=5e-4, b1=0.9, b2=0.999, eps=1e-8)
  base.update(kw)
  return base


def _multistep_torch(milestones):
  def make(opt):
    s = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    return lambda t: s.step()
  return make


@pytest.mark.parametrize('optim_cfg,make_opt', [
    (_cfg(), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9,
                                       weight_decay=5e-4)),
    (_cfg(nesterov=True), lambda p: torch.optim.SGD(
        p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    (_cfg(name='adam', lr=1e-2, weight_decay=5e-4),
     lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=5e-4)),
])
def test_optimizer_and_multistep_match_pytorch(optim_cfg, make_opt):
  milestones = (10, 30)
  sched_cfg = dict(name='multistep', milestones=milestones, gamma=0.1)
  got, lrs = _run_jax(optim_cfg, sched_cfg, STEPS)
  want, want_lrs = _run_torch(make_opt, _multistep_torch(list(milestones)))
  np.testing.assert_allclose(lrs, want_lrs, rtol=1e-6)
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6,
                               err_msg=k)


def _timm_cosine(base, t_initial, lr_min, warmup_t, warmup_lr_init, t):
  """timm CosineLRScheduler (cycle_limit=1, no warmup_prefix), written out."""
  if t < warmup_t:
    return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
  if t >= t_initial:
    return lr_min
  return lr_min + 0.5 * (base - lr_min) * (1 + math.cos(math.pi * t /
                                                        t_initial))


def test_cosine_warmup_matches_timm_rule_with_torch_sgd():
  base, total, warm, lr_min, warm_init = 0.1, 40, 8, 1e-4, 1e-6
  sched_cfg = dict(name='cosine', warmup_steps=warm, warmup_init_lr=warm_init,
                   min_lr=lr_min)
  got, lrs = _run_jax(_cfg(), sched_cfg, total)

  def make(opt):
    def step(t):  # timm: scheduler.step(iteration) after each update.
      for g in opt.param_groups:
        g['lr'] = _timm_cosine(base, total, lr_min, warm, warm_init, t + 1)
    for g in opt.param_groups:
      g['lr'] = _timm_cosine(base, total, lr_min, warm, warm_init, 0)
    return step

  want, want_lrs = _run_torch(
      lambda p: torch.optim.SGD(p, lr=base, momentum=0.9, weight_decay=5e-4),
      make)
  np.testing.assert_allclose(lrs, want_lrs, rtol=1e-5)
  assert lrs[0] == pytest.approx(warm_init) and lrs[-1] == pytest.approx(
      lr_min)
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6)


def test_unknown_names_are_errors():
  with pytest.raises(ValueError, match="'lamb'.*sgd"):
    optim.make_optimizer(_cfg(name='lamb'), lambda c: 0.1)
  with pytest.raises(ValueError, match="'step'.*multistep"):
    optim.make_schedule(_cfg(), dict(name='step'), 10)


def _opengait_adjust_lr(opt, iteration, every, t_max, min_lr):
  """OpenGait SwinGait's adjust_learning_rate (stateful, on the groups)."""
  if iteration < t_max:
    if iteration % every == 0:
      alpha = 0.5 * (1.0 + math.cos(math.pi * iteration / t_max))
      for g in opt.param_groups:
        g['lr'] = max(g['initial_lr'] * alpha, min_lr)
  elif iteration == t_max:
    for g in opt.param_groups:
      g['lr'] = min_lr


def test_adamw_param_groups_and_stepped_cosine_match_pytorch():
  base, wd, every, t_max, min_lr = 1e-2, 0.05, 10, 30, 5e-4
  # bn_scale: no decay; fc_bin: lr x 0.1 (floored at min_lr on its own).
  groups = ((r'^bn_scale$', 1.0, 0.0), (r'fc_bin', 0.1, None))
  optim_cfg = _cfg(name='adamw', lr=base, weight_decay=wd,
                   param_groups=groups)
  sched_cfg = dict(name='stepped_cosine', step_every=every,
                   total_steps=t_max, min_lr=min_lr)
  got, lrs = _run_jax(optim_cfg, sched_cfg, STEPS)

  def make_opt(params):
    w, bn, fc = params
    opt = torch.optim.AdamW([{'params': [w]},
                             {'params': [bn], 'weight_decay': 0.0},
                             {'params': [fc], 'lr': base * 0.1}],
                            lr=base, weight_decay=wd)
    for g in opt.param_groups:
      g['initial_lr'] = g['lr']
    return opt

  def make_sched(opt):
    _opengait_adjust_lr(opt, 0, every, t_max, min_lr)
    return lambda t: _opengait_adjust_lr(opt, t + 1, every, t_max, min_lr)

  want, want_lrs = _run_torch(make_opt, make_sched)
  np.testing.assert_allclose(lrs, want_lrs, rtol=1e-6)
  assert lrs[t_max - 1] > min_lr and lrs[t_max:].max() == pytest.approx(
      min_lr)
  assert len(set(lrs[:every].tolist())) == 1  # Held between updates.
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6,
                               err_msg=k)


def test_adamw_without_groups_is_optax_adamw():
  got, _ = _run_jax(_cfg(name='adamw', lr=1e-2, weight_decay=0.1),
                    dict(name='constant'), STEPS)
  want, _ = _run_torch(
      lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
      lambda opt: (lambda t: None))
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6)


def test_param_group_errors_name_the_regex():
  params = {'layer0': {'kernel': jnp.ones(2)}, 'FCs': {'fc_bin': jnp.ones(2)}}
  groups = ((r'^FCs/', 0.1, None), (r'^transformer/', 1.0, 0.0))
  tx, _ = experiment.optimizer_from(_cfg(param_groups=groups),
                                    dict(name='constant'), 10)
  with pytest.raises(ValueError,
                     match=r"\[1\] '\^transformer/'.*layer0/kernel"):
    tx.init(params)
  # First match wins; unmatched parameters are in the default group.
  labels = optim.param_group_labels(params, ((r'FCs', 2.0, None),
                                             (r'FCs|layer0', 1.0, None)))
  assert labels == {'layer0': {'kernel': '1'}, 'FCs': {'fc_bin': '0'}}
  assert optim.param_group_labels(params, ((r'FCs', 2.0, None),)) == {
      'layer0': {'kernel': 'default'}, 'FCs': {'fc_bin': '0'}}
  with pytest.raises(ValueError, match=r'param_groups\[0\].*regex, lr_mult'):
    experiment.optimizer_from(_cfg(param_groups=((r'FCs', 0.1),)),
                              dict(name='constant'), 10)
