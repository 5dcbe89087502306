"""The GIL ablations on the synthetic datasets, written to docs/.

``--dataset=casia_b`` (docs/ablation.md): small GaitSet and GaitGL variants
on the CASIA-B-style synthetic set (configs/synthetic_demo.py), NM/BG/CL
rank-1 of the CASIA-B protocol; settings ``triplet``, ``gil_rc`` and ``gil``
with λ_unif ∈ ``--lambdas`` × margin mode ∈ {fixed, class_adaptive}.

``--dataset=wild`` (docs/ablation_wild.md): DeepGaitV2-tiny on the
in-the-wild synthetic set (configs/synthetic_wild.py), rank-1 and mAP of
the Gait3D protocol; settings ``triplet``, ``gil_rc``, ``gil`` with λ_unif ∈
``--lambdas`` (fixed margin), the class-adaptive margin at the last λ, and
Term 2 over the samples of different classes instead of class centres
(``uniformity.over='samples'``) at the last λ.

Every setting trains with several seeds; a seed fixes the initialisation,
data order and frame sampling, so rows are compared with the ``triplet`` run
of the same seed (paired differences, their standard error and the seeds on
which the row won). Finished runs are reused (each run's report is kept in
its workdir), so an interrupted ablation continues where it stopped.

  python scripts/ablation.py --out=docs/ablation.md
  python scripts/ablation.py --dataset=wild --models=deepgaitv2 \
      --lambdas=0.01,0.03 --steps=300 --out=docs/ablation_wild.md
"""

from __future__ import annotations

import itertools
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import synthetic_demo
from configs import synthetic_wild
from data_prep import prepare
from gait_jax import evaluation
from gait_jax import experiment
from gait_jax import losses
from gait_jax import train
# pylint: enable=g-import-not-at-top,wrong-import-position

_DATASET = flags.DEFINE_enum('dataset', 'casia_b', ('casia_b', 'wild'),
                             'Which synthetic set (and protocol).')
_MODELS = flags.DEFINE_list(
    'models', None, 'Models (default gaitset,gaitgl; deepgaitv2 for wild).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds per setting.')
_STEPS = flags.DEFINE_integer('steps', 150, 'Training steps per run.')
_LAMBDAS = flags.DEFINE_list('lambdas', ['0.03', '0.1', '0.3'],
                             'λ_unif values of the gil preset.')
_VIEWS = flags.DEFINE_list(
    'views', ['000', '036', '072', '108', '144', '180'],
    'Views of the ablation\'s synthetic dataset (fewer than the demo\'s 11 '
    'keep each run short).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Where the ablation dataset is built (default '
    'data/ablation for casia_b, data (the demo\'s) for wild).')
_ROOT = flags.DEFINE_string(
    'root', None, 'Run directories (default workdirs/ablation, '
    'workdirs/ablation_wild).')
_OUT = flags.DEFINE_string(
    'out', None, 'Markdown output (default docs/ablation.md, '
    'docs/ablation_wild.md).')
_SETTINGS = flags.DEFINE_list(
    'settings', None, 'Train only these rows (names as in the table, e.g. '
    '"triplet"); default: all. The table always lists every row.')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False, 'Train nothing: tabulate the runs that finished '
    '(the runs column says how many seeds each row has).')

METRICS = {'casia_b': ('NM', 'BG', 'CL'), 'wild': ('rank-1', 'mAP')}
DEFAULT_DATA_DIR = {'casia_b': 'data/ablation', 'wild': 'data'}
DEFAULT_OUT = {'casia_b': 'docs/ablation.md', 'wild': 'docs/ablation_wild.md'}
DEFAULT_MODELS = {'casia_b': ['gaitset', 'gaitgl'], 'wild': ['deepgaitv2']}
DEFAULT_ROOT = {'casia_b': 'workdirs/ablation', 'wild': 'workdirs/ablation_wild'}


def models() -> list[str]:
  return _MODELS.value or DEFAULT_MODELS[_DATASET.value]


def metrics() -> tuple[str, ...]:
  return METRICS[_DATASET.value]


def _gil(lam: str, mode: str = 'fixed', over: str = 'centers') -> dict:
  return {'uniformity': dict(weight=float(lam), over=over),
          'triplet': dict(pair_weight=True, margin_mode=mode)}


def settings() -> list[tuple[str, str, dict]]:
  """(name, preset, loss overrides) of every ablation row."""
  rows = [('triplet', 'triplet', {}), ('gil_rc', 'gil_rc', {})]
  if _DATASET.value == 'wild':
    rows += [(f'gil λ={lam} fixed', 'gil', _gil(lam))
             for lam in _LAMBDAS.value]
    last = _LAMBDAS.value[-1]
    rows += [(f'gil λ={last} class_adaptive', 'gil',
              _gil(last, mode='class_adaptive')),
             (f'gil λ={last} over samples', 'gil', _gil(last, over='samples'))]
    return rows
  for lam, mode in itertools.product(_LAMBDAS.value,
                                     ('fixed', 'class_adaptive')):
    rows.append((f'gil λ={lam} {mode}', 'gil', _gil(lam, mode)))
  return rows


def run_config(model: str, preset: str, overrides: dict, seed: int):
  if _DATASET.value == 'wild':
    config = synthetic_wild.get_config(preset)
  else:
    config = synthetic_demo.get_config(preset)
    config.data.synthetic.views = tuple(_VIEWS.value)
  config.data.data_dir = _DATA_DIR.value or DEFAULT_DATA_DIR[_DATASET.value]
  config.model.name = model
  # The config's CE section (the wild recipe trains triplet + CE) is kept;
  # the rows differ only in the metric-learning terms.
  config.loss = losses.get_loss_config(
      preset, **{'ce': config.loss.ce.to_dict(), **overrides})
  config.seed = seed
  config.train.num_steps = _STEPS.value
  config.schedule.milestones = (int(_STEPS.value * 0.8),)
  config.eval.plots = False
  config.lock()
  return config


def run_one(model, name, preset, overrides, seed) -> dict:
  slug = (f'{model}-{name}-s{seed}'.replace(' ', '_').replace('λ=', 'l')
          .replace('.', 'p'))
  workdir = os.path.join(_ROOT.value or DEFAULT_ROOT[_DATASET.value], slug)
  report = os.path.join(workdir, 'eval_latest.json')
  if os.path.exists(report):
    with open(report) as f:
      done = json.load(f)
    if done['step'] != _STEPS.value:
      sys.exit(f'{report} was evaluated at step {done["step"]}, not '
               f'--steps={_STEPS.value}: pass another --root.')
    return done['summary']
  if _REPORT_ONLY.value or (_SETTINGS.value is not None
                            and name not in _SETTINGS.value):
    return None
  config = run_config(model, preset, overrides, seed)
  prepare.prepare_dataset(config)
  state = train.train(config, workdir)
  if int(state.step) < config.train.num_steps:  # Stopped by SIGTERM.
    sys.exit(f'{slug}: training stopped at step {int(state.step)}; rerun to '
             'resume.')
  eval_model = experiment.build_model(config, experiment.num_classes(config))
  evaluator = evaluation.Evaluator(config, eval_model,
                                   experiment.make_mesh(config), workdir)
  result = evaluator.run(int(state.step), {'params': state.params,
                                           'batch_stats': state.batch_stats},
                         final=False)
  logging.info('%s: %s', slug, result.summary())
  return result.summary()


def _mean_std(values: np.ndarray) -> str:
  std = values.std(ddof=1) if len(values) > 1 else 0.0
  return f'{values.mean():.2f} ± {std:.2f}'


def _mean_se(values: np.ndarray) -> str:
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
  return f'{values.mean():+.2f} ± {se:.2f}'


def _paired_rows(results: dict) -> list[str]:
  """Per-seed differences to the same model's triplet row (same seed = same
  initialisation and data order, so the seed-to-seed spread cancels)."""
  rows = []
  for (model, name), runs in results.items():
    base = results.get((model, 'triplet'))
    if name == 'triplet' or base is None:
      continue
    pairs = [(r, b) for r, b in zip(runs, base)
             if r is not None and b is not None]
    if not pairs:
      continue
    cells = [str(len(pairs))]
    for cond in metrics():
      diff = np.array([r[cond] - b[cond] for r, b in pairs])
      wins = int(np.sum(diff > 0))
      cells.append(f'{_mean_se(diff)} ({wins}/{len(diff)})')
    rows.append(f'| {model} | {name} | ' + ' | '.join(cells) + ' |')
  return rows


READING = '## Reading'


def _kept_reading(path: str) -> list[str]:
  """The hand-written ``## Reading`` section of an existing table, if any
  (kept when the tables are rewritten)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    text = f.read()
  if READING not in text:
    return []
  return ['', READING + text.split(READING, 1)[1].rstrip('\n')]


def _command() -> str:
  args = [f'--models={",".join(models())}',
          f'--seeds={",".join(_SEEDS.value)}', f'--steps={_STEPS.value}',
          f'--lambdas={",".join(_LAMBDAS.value)}']
  if _DATASET.value == 'wild':
    return ('python scripts/ablation.py --dataset=wild ' + ' '.join(args))
  return ('python scripts/ablation.py ' + ' '.join(args) +
          f' --views={",".join(_VIEWS.value)}')


HEADERS = {
    'casia_b': ('# GIL ablation on the synthetic dataset',
                '(configs/synthetic_demo.py with the model and loss replaced; '
                'tiny variants, CASIA-B protocol, rank-1 % excluding '
                'identical views, mean ± sample std over the seeds that ran '
                '(runs column); chance level 6.25 %).'),
    'wild': ('# GIL ablation on the in-the-wild synthetic dataset',
             '(configs/synthetic_wild.py with the metric-learning terms '
             'replaced (its CE term kept) and the steps shortened, the lr '
             'milestone at 80 %; DeepGaitV2-tiny, '
             'Gait3D protocol: rank-1 % and mAP % of 40 probes against the '
             'other test sequences, mean ± sample std over the seeds that '
             'ran (runs column); chance level of rank-1 2.5 %).'),
}


def write_markdown(results: dict, path: str) -> None:
  title, legend = HEADERS[_DATASET.value]
  lines = [
      title, '', f'Produced by `{_command()}` {legend}', '',
      '| model | loss | runs | ' + ' | '.join(metrics()) + ' |',
      '|---|---|---|' + '---|' * len(metrics()),
  ]
  for (model, name), runs in results.items():
    runs = [r for r in runs if r is not None]
    if not runs:
      continue
    cells = [str(len(runs))]
    for cond in metrics():
      cells.append(_mean_std(np.array([r[cond] for r in runs])))
    lines.append(f'| {model} | {name} | ' + ' | '.join(cells) + ' |')
  paired = _paired_rows(results)
  if paired:
    lines += [
        '',
        '## Paired differences to `triplet`',
        '',
        'A seed fixes the initialisation, the data order and the frame '
        'sampling, so each run can be compared with the `triplet` run of the '
        'same model and seed: points of (row − triplet), mean ± its '
        'standard error (sample std / √seeds) over the seeds, and in '
        'brackets the seeds on which the row was better.',
        '',
        '| model | loss | seeds | ' + ' | '.join(metrics()) + ' |',
        '|---|---|---|' + '---|' * len(metrics()),
    ] + paired
  lines += _kept_reading(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


def main(argv):
  del argv
  results = {}
  for model in models():
    for name, preset, overrides in settings():
      results[(model, name)] = [
          run_one(model, name, preset, overrides, int(seed))
          for seed in _SEEDS.value]
      # Partial tables as runs finish.
      write_markdown(results, _OUT.value or DEFAULT_OUT[_DATASET.value])


if __name__ == '__main__':
  app.run(main)
