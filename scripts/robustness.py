"""Corruption robustness of a checkpoint (RobustGait's protocol, silhouettes).

Evaluates the newest checkpoint of --workdir on the config's test split
clean and under every silhouette corruption × severity
(``gait_jax.data.corruptions``; one side of the protocol corrupted, the other
clean), and writes ``robustness.json``, ``robustness.md`` (per summary
metric: corruption rows, severity columns, score and drop from clean) and
``robustness_heatmap.png`` (the drop of the first metric):

  .venv/bin/python scripts/robustness.py --config=configs/synthetic_wild.py \
      --workdir=workdirs/synthetic_wild [--side=probe] \
      [--corruptions=freeze,patch] [--severities=1,3,5] [--out_dir=DIR]

RGB-level corruptions (noise, blur, weather, low light) need the RGB video
and a segmenter: they are not part of this evaluation.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from gait_jax.data import corruptions
from gait_jax.evaluation import robustness
# pylint: enable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'The run\'s experiment config.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (checkpoints).')
_SIDE = flags.DEFINE_enum('side', 'probe', robustness.SIDES,
                          'Which test sequences are corrupted.')
_NAMES = flags.DEFINE_list('corruptions', list(corruptions.CORRUPTIONS),
                           'Corruptions to run.')
_SEVERITIES = flags.DEFINE_list('severities', ['1', '2', '3', '4', '5'],
                                'Severities to run (1..5).')
_SEED = flags.DEFINE_integer('seed', 0, 'Extra seed of the corruptions.')
_OUT = flags.DEFINE_string('out_dir', None,
                           'Output directory (default <workdir>/robustness).')


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _WORKDIR.value is None or _CONFIG.value is None:
    raise app.UsageError('--config and --workdir are required.')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  for name in _NAMES.value:
    corruptions.get_corruption(name)
  try:
    severities = [int(s) for s in _SEVERITIES.value]
  except ValueError as err:
    raise app.UsageError(f'--severities: {err}') from err
  from data_prep import prepare  # pylint: disable=g-import-not-at-top
  from gait_jax import commands  # pylint: disable=g-import-not-at-top
  prepare.prepare_dataset(_CONFIG.value)
  return commands.run_robustness(
      _CONFIG.value, _WORKDIR.value, side=_SIDE.value, names=_NAMES.value,
      severities=severities, seed=_SEED.value, out_dir=_OUT.value)


if __name__ == '__main__':
  app.run(main)
