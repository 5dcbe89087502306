"""Training-curve parity: a PyTorch model and its Flax twin, step by step.

`train_parity_report` converts a PyTorch (OpenGait-interface) model's initial
weights into the config's Flax model, then trains both on the same batches
of the project's sampler and pipeline (same frames, same augmentation
draws): the JAX side with the real sharded train step of
``experiment.build_training`` on the config's mesh, the PyTorch side with
`torch_trainer.TorchTrainer` (the config's loss, optimizer and schedule
written for PyTorch), BatchNorm in training mode, float32. After every step
it compares the losses and, every ``param_every`` steps, the parameters and
BatchNorm statistics (the PyTorch state dict converted with
`convert.load_opengait_checkpoint`, so keys, layouts, BNNeck order and
``num_batches_tracked`` are handled by the converter). Optionally a float64
copy of the PyTorch model trains alongside and gives the recipe's float32
floor: how far PyTorch float32 itself is from exact arithmetic.

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
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data.source import GaitSource
from gait_jax.torch_compat import convert
from gait_jax.torch_compat import torch_trainer

_TERMS = ('triplet', 'uniformity', 'pair_softmax', 'ce')
TABLE_HEADER = (' step         lr     loss_jax   loss_torch  loss_rel '
                'param_rel    bn_rel flips')


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
  return pipeline.TrainBatchLoader.from_config(config.data, source, sampler)


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


def _relative_change(params, initial) -> float:
  """``||params - initial|| / ||initial||`` over all variables."""
  a = jax.tree.leaves(jax.device_get(params))
  b = jax.tree.leaves(jax.device_get(initial))
  num = sum(float(np.sum((np.asarray(x, np.float64) -
                          np.asarray(y, np.float64)) ** 2))
            for x, y in zip(a, b))
  den = sum(float(np.sum(np.asarray(y, np.float64) ** 2)) for y in b)
  return float(np.sqrt(num / max(den, 1e-30)))


def _rel(ours: float, ref: float) -> float:
  return abs(ours - ref) / max(abs(ref), 1e-12) if ours != ref else 0.0


def _output_shapes(model, variables, config) -> dict[str, tuple[int, int]]:
  """(parts, channels) of the Flax model's embeddings and logits."""
  sils = jax.ShapeDtypeStruct(
      (2, config.data.num_frames) + experiment.input_shape(config),
      np.float32)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                       variables, sils)
  shapes = {'embeddings': tuple(out['embeddings'].shape[1:])}
  if 'logits' in out:
    k, p = out['logits'].shape[1:]
    shapes['logits'] = (p, k)
  return shapes


def _nonzero_counts(ours, ref, parts: int) -> tuple[Any, Any]:
  """Active triplets summed over parts (JAX, PyTorch), or Nones."""
  if 'triplet/nonzero' not in ours or 'triplet/nonzero_sum' not in ref:
    return None, None
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


def _summary(report: dict[str, Any]) -> str:
  def fmt(x):
    return '-' if x is None else f'{x:.3e}'
  line = (f"max rel loss diff {fmt(report['max_rel_loss_diff'])}; after the "
          f"last step: params {fmt(report['param_max_rel_diff'])} (worst "
          f"{report['worst_param'] or '-'}), BatchNorm statistics "
          f"{fmt(report['bn_stats_max_rel_diff'])}; the parameters moved "
          f"{fmt(report.get('param_change'))} from their initial values")
  floor = report.get('float64_floor')
  if floor:
    line += (f"\nfloat32 floor (PyTorch float32 vs float64): max rel loss "
             f"diff {fmt(floor['max_rel_loss_diff'])}, params "
             f"{fmt(floor['param_max_rel_diff'])}, BatchNorm statistics "
             f"{fmt(floor['bn_stats_max_rel_diff'])}")
  return line


def train_parity_report(config, torch_module, steps: int, *,
                        bnneck_layout: str = 'channel_major',
                        param_every: int = 1, float64_floor: bool = False,
                        log: Callable[[str], None] | None = print
                        ) -> dict[str, Any]:
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
    float64_floor: also train a float64 copy of the PyTorch model and
      report how far the float32 one drifts from it (``float64_floor``).
    log: prints the table (None: silent).

  Returns:
    The report: per-step lists ``steps``, ``lr_jax``, ``lr_torch``,
    ``loss_jax``, ``loss_torch``, ``loss_rel_diff``, ``terms_jax`` /
    ``terms_torch`` (``{term: [...]}``), ``nonzero_jax`` / ``nonzero_torch``
    (active triplets, summed over parts), ``param_steps`` with
    ``param_rel_diff`` and ``bn_stats_rel_diff``; summaries
    ``max_rel_loss_diff``, ``param_max_rel_diff`` and
    ``bn_stats_max_rel_diff`` (after the last step; None without BatchNorm),
    ``worst_param``, ``initial_param_diff``, ``param_change`` (how far the
    PyTorch parameters moved: ``||θ - θ0|| / ||θ0||`` over all of them),
    ``hinge_flip_steps`` (steps whose active triplet counts differ); with
    ``float64_floor`` a dict of the same float32-vs-float64 lists and
    summaries for PyTorch.

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
  initial = jax.device_get(variables)  # Host copy: the step donates `state`.
  mesh = experiment.make_mesh(config)
  run = experiment.build_training(config, num_classes, mesh=mesh,
                                  abstract=True)
  state = experiment.state_from_variables(config, num_classes, variables,
                                          mesh)
  shapes = _output_shapes(run.eval_model, variables, config)
  torch_side = torch_trainer.TorchTrainer(torch_module, config, shapes)
  exact = torch_side.float64_copy() if float64_floor else None
  report = {'model': name, 'variant': config.model.get('variant', ''),
            'num_devices': mesh.size, 'preset': config.loss.preset,
            'optimizer': config.optim.name, 'num_steps': steps,
            'initial_param_diff': tree_rel_diff(
                initial, torch_side.variables(name, model_config,
                                              bnneck_layout))[0]}
  lists = {k: [] for k in ('steps', 'lr_jax', 'lr_torch', 'loss_jax',
                           'loss_torch', 'loss_rel_diff', 'nonzero_jax',
                           'nonzero_torch', 'param_steps', 'param_rel_diff',
                           'bn_stats_rel_diff')}
  floor = {k: [] for k in ('loss_float64', 'loss_rel_diff', 'param_rel_diff',
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
             'loss_torch': lt, 'loss_rel': _rel(lj, lt)}
      nonzero_jax, nonzero_torch = _nonzero_counts(
          ours, ref, shapes['embeddings'][0])
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
        if f'loss/{term}' in ref:
          terms['terms_jax'].setdefault(term, []).append(
              ours.get(f'loss/{term}'))
          terms['terms_torch'].setdefault(term, []).append(
              ref[f'loss/{term}'])
      if exact is not None:
        l64 = exact.step(host)['loss/total']
        floor['loss_float64'].append(l64)
        floor['loss_rel_diff'].append(_rel(lt, l64))
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
        report['param_change'] = _relative_change(ref_vars['params'],
                                                  initial['params'])
        lists['param_steps'].append(step + 1)
        lists['param_rel_diff'].append(row['param_rel'])
        lists['bn_stats_rel_diff'].append(row['bn_rel'])
        if exact is not None:
          diff = torch_trainer.state_rel_diff(torch_side.module, exact.module)
          floor['param_rel_diff'].append(diff['params'])
          floor['bn_stats_rel_diff'].append(diff['buffers'])
      say(format_row(row))
  report.update(lists)
  report.update(terms)
  report['max_rel_loss_diff'] = max(lists['loss_rel_diff'], default=0.0)
  last = lambda values: values[-1] if values else None
  report['param_max_rel_diff'] = last(lists['param_rel_diff'])
  report['bn_stats_max_rel_diff'] = last(lists['bn_stats_rel_diff'])
  report['worst_param'] = worst
  report['hinge_flip_steps'] = [
      s for s, a, b in zip(lists['steps'], lists['nonzero_jax'],
                           lists['nonzero_torch'])
      if a is not None and a != b]
  if exact is not None:
    floor['max_rel_loss_diff'] = max(floor['loss_rel_diff'], default=0.0)
    floor['param_max_rel_diff'] = last(floor['param_rel_diff'])
    floor['bn_stats_max_rel_diff'] = last(floor['bn_stats_rel_diff'])
    report['float64_floor'] = floor
  say(_summary(report))
  return report
