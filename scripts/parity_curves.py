"""Training-curve parity figures of the CASIA-B recipes, for docs/parity.md.

For each model, builds ``configs/<model>_casia_b.py:smoke`` (tiny variant,
4×2 batches of 8 frames, the smoke synthetic dataset), stretches its
schedule to ``--steps`` (milestones and warm-up scaled from the recipe's full
length), trains a PyTorch model and its Flax twin on the same batches with
`torch_compat.train_parity_report` (parameters compared every step, plus a
float64 copy of the PyTorch model for the float32 floor) and writes

  docs/parity_<model>.png   loss curves (JAX, PyTorch float32 and float64)
                            and the relative differences against the step
  docs/parity_<model>.json  the report

and prints a Markdown table row per model. The PyTorch model is the test
suite's OpenGait mirror (tests/torch_mirrors.py) unless ``--torch_module``
names a factory.

  python scripts/parity_curves.py --models=gaitset --steps=200
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tests'))

# pylint: disable=g-import-not-at-top,wrong-import-position
import importlib

from data_prep import prepare
from gait_jax import commands
from gait_jax import torch_compat
# pylint: enable=g-import-not-at-top,wrong-import-position

MODELS = ('gaitset', 'gaitpart', 'gaitgl', 'baseline', 'gaitbase')
_MODELS = flags.DEFINE_list('models', list(MODELS), 'Models to run.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Training steps per model.')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'docs'),
                           'Where the PNG and JSON files go.')
_TORCH_MODULE = flags.DEFINE_string(
    'torch_module', None, 'package.module:factory of the PyTorch model '
    '(default: the test-suite mirror of each model, tiny variant).')
_SEED = flags.DEFINE_integer('seed', 0, 'torch.manual_seed of the mirror.')


def smoke_config(model: str, steps: int):
  """The smoke config of the model's CASIA-B recipe, ``steps`` long."""
  module = importlib.import_module(f'configs.{model}_casia_b')
  full = module.get_config('')
  config = module.get_config('smoke')
  scale = steps / full.train.num_steps
  config.train.num_steps = steps
  config.schedule.milestones = tuple(
      max(1, round(m * scale)) for m in full.schedule.milestones)
  if full.schedule.warmup_steps:
    config.schedule.warmup_steps = max(1, round(full.schedule.warmup_steps *
                                                scale))
  return config


def torch_model(model: str):
  if _TORCH_MODULE.value:
    return commands.load_torch_factory(_TORCH_MODULE.value)
  import torch  # pylint: disable=g-import-not-at-top
  import torch_mirrors  # pylint: disable=g-import-not-at-top
  torch.manual_seed(_SEED.value)
  return torch_mirrors.build(model, 'tiny')


def plot(report, path: str) -> None:
  """Loss curves and relative differences against the step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  floor = report.get('float64_floor') or {}
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
  steps = report['steps']
  top.plot(steps, report['loss_torch'], label='PyTorch float32', lw=2.5,
           color='tab:orange')
  top.plot(steps, report['loss_jax'], label='JAX float32', lw=1,
           color='tab:blue')
  if floor.get('loss_float64'):
    top.plot(steps, floor['loss_float64'], label='PyTorch float64', lw=1,
             ls='--', color='k')
  top.set_ylabel('training loss')
  top.legend()
  top.set_title(f"{report['model']} ({report['variant']}), loss "
                f"{report['preset']}, {report['optimizer']}, "
                f"{report['num_devices']} device(s)")
  eps = 1e-12
  clip = lambda xs: [max(x or 0.0, eps) for x in xs]
  bottom.semilogy(report['param_steps'], clip(report['param_rel_diff']),
                  label='params: JAX vs PyTorch', color='tab:blue')
  bottom.semilogy(steps, clip(report['loss_rel_diff']),
                  label='loss: JAX vs PyTorch', color='tab:blue', lw=0.7,
                  ls=':')
  if floor.get('param_rel_diff'):
    bottom.semilogy(report['param_steps'], clip(floor['param_rel_diff']),
                    label='params: PyTorch float32 vs float64', color='k')
    bottom.semilogy(steps, clip(floor['loss_rel_diff']),
                    label='loss: PyTorch float32 vs float64', color='k',
                    lw=0.7, ls=':')
  bottom.axhline(1e-3, color='tab:red', lw=0.8, ls='--', label='1e-3')
  bottom.set_xlabel('step')
  bottom.set_ylabel('max relative difference')
  bottom.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def table_row(report) -> str:
  floor = report.get('float64_floor') or {}
  fmt = lambda x: '-' if x is None else f'{x:.1e}'
  peak = max(report['param_rel_diff'] or [0.0])
  return (f"| {report['model']} | {report['preset']} | "
          f"{report['optimizer']} | {report['num_steps']} | "
          f"{fmt(report['max_rel_loss_diff'])} | "
          f"{fmt(report['param_max_rel_diff'])} | {fmt(peak)} | "
          f"{fmt(floor.get('max_rel_loss_diff'))} | "
          f"{fmt(floor.get('param_max_rel_diff'))} | "
          f"{len(report['hinge_flip_steps'])} | "
          f"`{report['worst_param']}` |")


def main(argv) -> None:
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  rows = []
  for model in _MODELS.value:
    config = smoke_config(model, _STEPS.value)
    prepare.prepare_dataset(config)
    report = torch_compat.train_parity_report(
        config, torch_model(model), _STEPS.value, float64_floor=True)
    with open(os.path.join(_OUT.value, f'parity_{model}.json'), 'w') as f:
      json.dump(report, f)
    plot(report, os.path.join(_OUT.value, f'parity_{model}.png'))
    rows.append(table_row(report))
  print('| model | loss | optimizer | steps | max loss diff | params (last) '
        '| params (peak) | floor loss | floor params | flip steps | worst '
        'variable |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  print('\n'.join(rows))


if __name__ == '__main__':
  app.run(main)
