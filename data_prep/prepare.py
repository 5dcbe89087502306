"""Finds (or, for the synthetic data, builds) the dataset of an experiment.

`prepare_dataset(config)` is called by the launcher before training or
evaluation. `config.data.source` says where the data comes from:

  'tfds'       an existing dataset directory, `config.data.dataset_dir`
               (written by `python -m data_prep.convert`);
  'synthetic'  the built-in synthetic dataset, rendered into
               `config.data.data_dir` on first use (reused afterwards) from
               `config.data.synthetic`; `config.data.dataset_dir` is set to
               it;
  'synthetic_wild'
               the same for the Gait3D-style in-the-wild synthetic dataset
               (`data_prep.synthetic.wild_dataset`) from
               `config.data.synthetic_wild`.
"""

from __future__ import annotations

import os
from typing import Any

SOURCES = ('tfds', 'synthetic', 'synthetic_wild')


def prepare_dataset(config: Any) -> str:
  """Sets `config.data.dataset_dir` (building the synthetic data if needed).

  Args:
    config: the experiment config (an `ml_collections.ConfigDict` with a
      `data` section: source, dataset_dir, data_dir, synthetic).

  Returns:
    The dataset directory.

  Raises:
    ValueError: `config.data.source` is not one of `SOURCES`.
    FileNotFoundError: the dataset directory does not exist.
  """
  source = config.data.source
  if source == 'synthetic':
    from data_prep.synthetic import dataset as synthetic  # pylint: disable=g-import-not-at-top
    cfg = synthetic.SyntheticConfig(**config.data.synthetic.to_dict())
    config.data.dataset_dir = synthetic.build_synthetic_dataset(
        config.data.data_dir, cfg)
  elif source == 'synthetic_wild':
    from data_prep.synthetic import wild_dataset  # pylint: disable=g-import-not-at-top
    cfg = wild_dataset.WildDatasetConfig(
        **config.data.synthetic_wild.to_dict())
    config.data.dataset_dir = wild_dataset.build_wild_dataset(
        config.data.data_dir, cfg)
  elif source not in SOURCES:
    raise ValueError(f'data.source={source!r}; valid: '
                     f'{", ".join(repr(s) for s in SOURCES)}.')
  dataset_dir = config.data.dataset_dir
  if not dataset_dir or not os.path.isdir(dataset_dir):
    raise FileNotFoundError(
        f'data.dataset_dir={dataset_dir!r} does not exist. Convert a dataset '
        'with `python -m data_prep.convert` first.')
  return dataset_dir
