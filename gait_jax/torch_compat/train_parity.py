"""Training-curve parity: a PyTorch model and its Flax twin, step by step.

`train_parity_report` converts a PyTorch (OpenGait-interface) model's initial
weights into the config's Flax model, then trains both on the same batches
of the project's sampler and pipeline (same frames, same augmentation
draws): the JAX side with the real sharded train step of
``experiment.build_training`` on the config's mesh, the PyTorch side with
`torch_losses` and `torch_optim` (the config's loss, optimizer and schedule
written for PyTorch), BatchNorm in training mode, float32. After every step
it compares the losses and, every ``param_every`` steps, the parameters and
BatchNorm statistics (the PyTorch state dict converted with
`convert.load_opengait_checkpoint`, so keys, layouts, BNNeck order and
``num_batches_tracked`` are handled by the converter).

Relative differences are ``max |ours - ref| / max |ref|`` per variable, the
largest over all variables; the loss difference is ``|ours - ref| / |ref|``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from flax import traverse_util
import jax
import numpy as np

from gait_jax import experiment
from gait_jax import parallel
from gait_jax.data import augment as augment_lib
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data.source import GaitSource
from gait_jax.torch_compat import convert
from gait_jax.torch_compat import torch_losses
from gait_jax.torch_compat import torch_optim

_TERMS = ('triplet', 'uniformity', 'pair_softmax', 'ce')


def make_loader(config) -> pipeline.TrainBatchLoader:
  """The trainer's P×K loader of ``config.data`` (one process).

  Raises:
    ValueError: no dataset directory.
  """
  if not config.data.dataset_dir:
    raise ValueError('config.data.dataset_dir is empty.')
  source = GaitSource(config.data.dataset_dir, 'train')
  sampler = sampling.PKSampler(
      source.subject_indices(source.train_classes()), config.data.p,
      config.data.k, seed=config.seed, batch_shuffle=config.data.batch_shuffle)
  return pipeline.TrainBatchLoader(
      source, sampler, frame_sampler=config.data.frame_sampler,
      num_frames=config.data.num_frames, frames_skip=config.data.frames_skip,
      augment=augment_lib.from_config(config.data.augment))


def tree_rel_diff(ours: Mapping[str, Any], ref: Mapping[str, Any]
                  ) -> tuple[float, str]:
  """Largest per-variable ``max|ours - ref| / max|ref|`` and its path.

  Raises:
    ValueError: the trees hold different variables.
  """
  a = traverse_util.flatten_dict(jax.device_get(dict(ours)))
  b = traverse_util.flatten_dict(jax.device_get(dict(ref)))
  if set(a) != set(b):
    raise ValueError(f'Variables differ: {sorted(set(a) ^ set(b))[:5]}.')
  worst, where = 0.0, ''
  for path in sorted(b):
    x = np.asarray(a[path], np.float64)
    y = np.asarray(b[path], np.float64)
    err = float(np.max(np.abs(x - y), initial=0.0))
    scale = float(np.max(np.abs(y), initial=0.0))
    rel = err / max(scale, 1e-12) if err else 0.0
    if not where or rel > worst:
      worst, where = rel, '/'.join(path)
  return worst, where


def _opengait_layout(x, parts: int, channels: int):
  """A ``[n, c, p]`` view of an OpenGait output (``[n, p, c]`` from code
  older than mid-2022 is transposed when the shape tells them apart)."""
  if x is None or tuple(x.shape[1:]) == (channels, parts):
    return x
  if tuple(x.shape[1:]) == (parts, channels):
    return x.transpose(1, 2)
  raise ValueError(f'PyTorch output of shape {tuple(x.shape)}; expected '
                   f'[n, {channels}, {parts}].')


class _TorchSide:
  """The PyTorch model, its optimizer and scheduler, one step at a time."""

  def __init__(self, module, config, shapes):
    import torch  # pylint: disable=g-import-not-at-top
    self.torch = torch
    self.module = module.float().train()
    self.device = next(module.parameters()).device
    self.config = config
    self.shapes = shapes  # {'embeddings': (p, c), 'logits': (p, K)}
    self.optimizer, self.scheduler = torch_optim.make_optimizer(
        [p for p in module.parameters() if p.requires_grad], config.optim,
        config.schedule, config.train.num_steps)

  def step(self, host: Mapping[str, np.ndarray]) -> dict[str, float]:
    torch = self.torch
    sils = torch.from_numpy(host['sils']).to(self.device).float() / 255.0
    labels = torch.from_numpy(
        np.asarray(host['labels'], np.int64)).to(self.device)
    self.optimizer.zero_grad(set_to_none=True)
    feat = self.module(([sils], labels, None, None, None))['training_feat']
    emb = _opengait_layout(feat['triplet']['embeddings'],
                           *self.shapes['embeddings'])
    logits = feat.get('softmax', {}).get('logits')
    if logits is not None and 'logits' in self.shapes:
      logits = _opengait_layout(logits, *self.shapes['logits'])
    loss, metrics = torch_losses.compute_loss(emb, logits, labels,
                                              self.config.loss)
    metrics['lr'] = float(self.optimizer.param_groups[0]['lr'])
    if not np.isfinite(metrics['loss/total']):
      return metrics
    loss.backward()
    self.optimizer.step()
    self.scheduler.step()
    return metrics

  def variables(self, model_name: str, model_config, layout: str):
    state = {k: v.detach().cpu().clone()
             for k, v in self.module.state_dict().items()}
    return convert.load_opengait_checkpoint(state, model_name, model_config,
                                            layout)


def _output_shapes(model, variables, config) -> dict[str, tuple[int, int]]:
  """(parts, channels) of the Flax model's embeddings and logits."""
  sils = jax.ShapeDtypeStruct((2, config.data.num_frames, 64, 44),
                              np.float32)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                       variables, sils)
  shapes = {'embeddings': tuple(out['embeddings'].shape[1:])}
  if 'logits' in out:
    k, p = out['logits'].shape[1:]
    shapes['logits'] = (p, k)
  return shapes


def _nonzero_counts(ours, ref, torch_side) -> tuple[Any, Any]:
  """Active triplets summed over parts (JAX, PyTorch), or Nones."""
  if 'triplet/nonzero' not in ours or 'triplet/nonzero_sum' not in ref:
    return None, None
  parts = torch_side.shapes['embeddings'][0]
  return (int(round(ours['triplet/nonzero'] * parts)),
          int(round(ref['triplet/nonzero_sum'])))


def format_row(row: Mapping[str, Any]) -> str:
  """One line of the per-step table (see `TABLE_HEADER`)."""
  def num(x, fmt):
    return f'{x:{fmt}}' if x is not None else '-'.rjust(len(f'{0.0:{fmt}}'))
  return (f"{row['step']:>5d} {row['lr']:>10.3e} {row['loss_jax']:>12.6f} "
          f"{row['loss_torch']:>12.6f} {row['loss_rel']:>9.2e} "
          f"{num(row.get('param_rel'), '9.2e')} "
          f"{num(row.get('bn_rel'), '9.2e')} {row.get('flips', '-'):>5}")


TABLE_HEADER = (' step         lr     loss_jax   loss_torch  loss_rel '
                'param_rel    bn_rel flips')


def train_parity_report(config, torch_module, steps: int, *,
                 bnneck_layout: str = 'channel_major', param_every: int = 1,
                 log: Callable[[str], None] | None = print) -> dict[str, Any]:
  """Trains ``torch_module`` and its Flax twin for ``steps`` steps.

  Args:
    config: the experiment config (its model, loss, data, optim, schedule,
      ``train.num_devices``); ``config.data.dataset_dir`` must exist and
      ``train.compute_dtype`` must be float32.
    torch_module: a PyTorch model with OpenGait's ``forward(inputs)``
      interface whose state dict `convert.load_opengait_checkpoint` reads
      for ``config.model``; it is trained in place.
    steps: number of training steps.
    bnneck_layout: see `convert.load_opengait_checkpoint`.
    param_every: compare parameters every this many steps (and after the
      last); each comparison converts the PyTorch state dict.
    log: prints the table (None: silent).

  Returns:
    The report: per-step lists ``steps``, ``lr_jax``, ``lr_torch``,
    ``loss_jax``, ``loss_torch``, ``loss_rel_diff``, ``terms_jax`` /
    ``terms_torch`` (``{term: [...]}``), ``nonzero_jax`` / ``nonzero_torch``
    (active triplets, summed over parts), ``param_steps`` with
    ``param_rel_diff`` and ``bn_stats_rel_diff``; summaries
    ``max_rel_loss_diff``, ``param_max_rel_diff`` and
    ``bn_stats_max_rel_diff`` (after the last step; None without BatchNorm),
    ``worst_param``, ``initial_param_diff``, ``hinge_flip_steps`` (steps
    whose active triplet counts differ).

  Raises:
    ValueError: a non-float32 config, several processes, or a PyTorch model
      that does not fit ``config.model``.
  """
  if config.train.compute_dtype != 'float32':
    raise ValueError('Training parity runs in float32; got '
                     f'train.compute_dtype={config.train.compute_dtype!r}.')
  if jax.process_count() != 1:
    raise ValueError('Training parity runs in a single process.')
  say = log or (lambda _: None)
  loader = make_loader(config)
  state_dict = {k: v.detach().cpu().clone()
                for k, v in torch_module.state_dict().items()}
  num_classes = experiment.num_classes(config, checkpoint=state_dict)
  model_config = dict(config.model.to_dict(), num_classes=num_classes)
  name = model_config.pop('name')
  variables = convert.load_opengait_checkpoint(state_dict, name, model_config,
                                               bnneck_layout)
  mesh = experiment.make_mesh(config)
  run = experiment.build_training(config, num_classes, mesh=mesh,
                                  abstract=True)
  state = experiment.state_from_variables(config, num_classes, variables,
                                          mesh)
  torch_side = _TorchSide(torch_module, config,
                          _output_shapes(run.eval_model, variables, config))
  report = {'model': name, 'variant': config.model.get('variant', ''),
            'num_devices': mesh.size, 'preset': config.loss.preset,
            'optimizer': config.optim.name, 'num_steps': steps,
            'initial_param_diff': tree_rel_diff(
                variables, torch_side.variables(name, model_config,
                                                bnneck_layout))[0]}
  lists = {k: [] for k in ('steps', 'lr_jax', 'lr_torch', 'loss_jax',
                           'loss_torch', 'loss_rel_diff', 'nonzero_jax',
                           'nonzero_torch', 'param_steps', 'param_rel_diff',
                           'bn_stats_rel_diff')}
  terms = {'terms_jax': {}, 'terms_torch': {}}
  has_bn = bool(jax.tree.leaves(state.batch_stats))
  worst = ''
  say(f'{name} ({report["variant"]}, {num_classes} classes) on '
      f'{mesh.size} device(s), loss {config.loss.preset}, '
      f'{config.optim.name}: {steps} steps')
  say(TABLE_HEADER)
  with jax.default_matmul_precision('highest'):
    for step in range(steps):
      host = loader(step)
      batch = parallel.host_to_global(
          mesh, {k: host[k] for k in ('sils', 'labels', 'mask')})
      state, metrics = run.step(state, batch)  # Runs while PyTorch steps.
      ref = torch_side.step(host)
      ours = {k: float(v) for k, v in jax.device_get(metrics).items()}
      lj, lt = ours['loss/total'], ref['loss/total']
      row = {'step': step + 1, 'lr': ref['lr'], 'loss_jax': lj,
             'loss_torch': lt,
             'loss_rel': abs(lj - lt) / max(abs(lt), 1e-12) if lj != lt
                         else 0.0}
      nonzero_jax, nonzero_torch = _nonzero_counts(ours, ref, torch_side)
      if nonzero_jax is not None:
        row['flips'] = abs(nonzero_jax - nonzero_torch)
      for key, value in (('steps', step + 1), ('lr_jax', ours['lr']),
                         ('lr_torch', ref['lr']), ('loss_jax', lj),
                         ('loss_torch', lt),
                         ('loss_rel_diff', row['loss_rel']),
                         ('nonzero_jax', nonzero_jax),
                         ('nonzero_torch', nonzero_torch)):
        lists[key].append(value)
      for term in _TERMS:
        key = f'loss/{term}'
        if key in ref:
          terms['terms_jax'].setdefault(term, []).append(ours.get(key))
          terms['terms_torch'].setdefault(term, []).append(ref[key])
      if not (np.isfinite(lj) and np.isfinite(lt) and ours['finite'] == 1.0):
        say(f'Non-finite loss at step {step + 1} (JAX {lj}, PyTorch {lt}); '
            'stopped.')
        break
      if (step + 1) % param_every == 0 or step + 1 == steps:
        ref_vars = torch_side.variables(name, model_config, bnneck_layout)
        row['param_rel'], worst = tree_rel_diff(state.params,
                                                ref_vars['params'])
        row['bn_rel'] = (tree_rel_diff(state.batch_stats,
                                       ref_vars['batch_stats'])[0]
                         if has_bn else None)
        lists['param_steps'].append(step + 1)
        lists['param_rel_diff'].append(row['param_rel'])
        lists['bn_stats_rel_diff'].append(row['bn_rel'])
      say(format_row(row))
  report.update(lists)
  report.update(terms)
  report['max_rel_loss_diff'] = max(lists['loss_rel_diff'], default=0.0)
  report['param_max_rel_diff'] = (lists['param_rel_diff'][-1]
                                  if lists['param_rel_diff'] else None)
  report['bn_stats_max_rel_diff'] = (lists['bn_stats_rel_diff'][-1]
                                     if lists['bn_stats_rel_diff'] else None)
  report['worst_param'] = worst
  report['hinge_flip_steps'] = [
      s for s, a, b in zip(lists['steps'], lists['nonzero_jax'],
                           lists['nonzero_torch'])
      if a is not None and a != b]
  say(f'max rel loss diff {report["max_rel_loss_diff"]:.3e}; after step '
      f'{lists["steps"][-1] if lists["steps"] else 0}: params '
      f'{report["param_max_rel_diff"] or 0.0:.3e} (worst {worst or "-"}), '
      f'BatchNorm statistics {report["bn_stats_max_rel_diff"] or 0.0:.3e}')
  return report
