"""Writes the partition JSON files of this directory.

Run `python -m data_prep.partitions.generate` to regenerate the ones that
follow a rule (CASIA-B, OUMVLP, GREW, CCPG, CASIA-E). The Gait3D and
SUSTech1K partitions are irregular id lists from the datasets' releases and
are shipped as they are (`gait3d.json`, `sustech1k.json`).
"""

import json
import os

_DIR = os.path.dirname(os.path.abspath(__file__))


def partitions() -> dict[str, dict[str, object]]:
  """Returns name -> partition (description, train and test subject ids)."""
  casia_train = [f'{i:03d}' for i in range(1, 75)]
  casia_test = [f'{i:03d}' for i in range(75, 125)]
  return {
      'casia_b': {
          'description': 'CASIA-B large-sample training: subjects 001-074 '
                         'train, 075-124 test.',
          'train': casia_train,
          'test': casia_test,
      },
      'casia_b_73': {
          'description': 'Older CASIA-B partition: 001-074 without 005 '
                         'train (73), 075-124 test; 005 is unused.',
          'train': [s for s in casia_train if s != '005'],
          'test': casia_test,
      },
      'oumvlp': {
          'description': 'OUMVLP: odd ids 00001-10305 train (5153), even '
                         'ids 00002-10306 and 10307 test (5154).',
          'train': [f'{i:05d}' for i in range(1, 10306, 2)],
          'test': [f'{i:05d}' for i in range(2, 10307, 2)] + ['10307'],
      },
      'grew': {
          'description': "GREW: 20000 training ids (00001train-20000train), "
                         "6000 test ids (00001-06000) plus the probe "
                         "pseudo-subject 'probe'.",
          'train': [f'{i:05d}train' for i in range(1, 20001)],
          'test': [f'{i:05d}' for i in range(1, 6001)] + ['probe'],
      },
      'ccpg': {
          'description': 'CCPG: ids 000-099 train, 100-199 test.',
          'train': [f'{i:03d}' for i in range(0, 100)],
          'test': [f'{i:03d}' for i in range(100, 200)],
      },
      'casia_e': {
          'description': 'CASIA-E (OpenGait split): ids 001-200 train, '
                         '201-1014 test.',
          'train': [f'{i:03d}' for i in range(1, 201)],
          'test': [f'{i:03d}' for i in range(201, 1015)],
      },
  }


def main() -> None:
  for name, part in partitions().items():
    with open(os.path.join(_DIR, f'{name}.json'), 'w') as f:
      json.dump(part, f, indent=0)
      f.write('\n')


if __name__ == '__main__':
  main()
