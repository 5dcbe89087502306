"""Train/test subject partitions of the real datasets, shipped as JSON."""

from __future__ import annotations

import json
import os

_DIR = os.path.dirname(os.path.abspath(__file__))
NAMES = ('casia_b', 'casia_b_73', 'oumvlp', 'gait3d', 'grew', 'ccpg',
         'sustech1k', 'casia_e')
# Protocol -> its default partition.
DEFAULT = {'casia_b': 'casia_b', 'oumvlp': 'oumvlp', 'gait3d': 'gait3d',
           'grew': 'grew', 'ccpg': 'ccpg', 'sustech1k': 'sustech1k',
           'casia_e': 'casia_e'}


def load_partition(name_or_path: str) -> dict[str, list[str]]:
  """Loads a partition by name (one of `NAMES`) or path.

  Args:
    name_or_path: a name from `NAMES`, or a JSON file with 'train' and 'test'
      lists of subject ids (OpenGait's 'TRAIN_SET'/'TEST_SET' keys work too).

  Returns:
    {'train': [...], 'test': [...]}, sorted subject ids.

  Raises:
    ValueError: unknown name, missing keys or overlapping subject sets.
  """
  if name_or_path in NAMES:
    path = os.path.join(_DIR, f'{name_or_path}.json')
  elif os.path.isfile(name_or_path):
    path = name_or_path
  else:
    raise ValueError(f'Unknown partition {name_or_path!r}: give one of '
                     f'{list(NAMES)} or a JSON file path')
  with open(path) as f:
    data = json.load(f)
  out = {}
  for split, alias in (('train', 'TRAIN_SET'), ('test', 'TEST_SET')):
    ids = data.get(split, data.get(alias))
    if not isinstance(ids, list):
      raise ValueError(f'{path}: expected a list under {split!r} or '
                       f'{alias!r}')
    out[split] = sorted(str(i) for i in ids)
  overlap = set(out['train']) & set(out['test'])
  if overlap:
    raise ValueError(f'{path}: train and test share subjects '
                     f'{sorted(overlap)[:5]}')
  return out
