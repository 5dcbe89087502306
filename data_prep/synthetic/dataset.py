"""The built-in synthetic gait dataset, laid out like CASIA-B.

Subjects '001'..., types nm-01..06 / bg-01..02 / cl-01..02 and views
'000'...'180', rendered procedurally (`render.py`) and written as a TFDS
array_record dataset (`data_prep.tfds_writer`) with splits `train` (the first
`num_train_subjects` subjects) and `test` (the rest). Everything is a pure
function of the config: identity from (seed, subject), bag or coat from
(seed, subject, condition), start phase, length and nuisance from
(seed, subject, type, view).

  python -m data_prep.synthetic.dataset --data_dir=/tmp/gait_data \
      --preview=/tmp/synthetic_preview.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import dataclasses
import json
import os
import zlib

import numpy as np

from data_prep.synthetic import building
from data_prep.synthetic import render

CASIA_B_VIEWS = tuple(f'{v:03d}' for v in range(0, 181, 18))
CASIA_B_TYPES = (tuple(f'nm-{i:02d}' for i in range(1, 7))
                 + ('bg-01', 'bg-02', 'cl-01', 'cl-02'))
# Bump when the renderer's output changes, so stale datasets are detected.
RENDERER_VERSION = 1
VERSION = building.VERSION
# Below this many sequences rendering stays in-process (starting worker
# processes would cost more than it saves).
MIN_POOL_SEQUENCES = 64


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """What the synthetic dataset contains (stored in its metadata).

  Attributes:
    num_subjects: number of identities ('001', '002', ...).
    num_train_subjects: the first this many subjects form the train split.
    views: view names (azimuth in degrees, CASIA-B convention).
    types: CASIA-B sequence types; the condition is the prefix (nm/bg/cl).
    min_frames: shortest sequence.
    max_frames: longest sequence.
    seed: master seed.
    identity_spread: scales the spread of body and gait parameters between
      identities (0 = everyone alike; larger = easier to tell apart).
    frame_size: frame height and width.
    supersample: rendering supersampling factor.
    nuisance: per-sequence nuisance spreads.
  """
  num_subjects: int = 40
  num_train_subjects: int = 24
  views: tuple[str, ...] = CASIA_B_VIEWS
  types: tuple[str, ...] = CASIA_B_TYPES
  min_frames: int = 20
  max_frames: int = 40
  seed: int = 0
  identity_spread: float = 1.0
  frame_size: int = 64
  supersample: int = 1
  nuisance: render.Nuisance = render.Nuisance()

  def __post_init__(self):
    if not 1 <= self.num_train_subjects < self.num_subjects:
      raise ValueError(
          f'num_train_subjects={self.num_train_subjects} must be in '
          f'[1, num_subjects={self.num_subjects}) so both splits have '
          'subjects')
    if not 1 <= self.min_frames <= self.max_frames:
      raise ValueError(f'need 1 <= min_frames={self.min_frames} <= '
                       f'max_frames={self.max_frames}')
    for v in self.views:
      if not v.isdigit():
        raise ValueError(f'view {v!r} must be an azimuth in degrees, e.g. '
                         "'090'")
    for t in self.types:
      if t[:2] not in render.CONDITIONS:
        raise ValueError(f'type {t!r} must start with one of '
                         f'{render.CONDITIONS}')
    if not self.views or not self.types:
      raise ValueError('views and types must not be empty')

  @property
  def subjects(self) -> list[str]:
    return [f'{i:03d}' for i in range(1, self.num_subjects + 1)]

  def to_json(self) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(self)))


def _code(text: str) -> int:
  return zlib.crc32(text.encode('utf-8'))


def identity_of(config: SyntheticConfig, subject: str) -> dict[str, float]:
  """Returns the identity parameters of a subject (deterministic)."""
  rng = np.random.default_rng([config.seed, 0, int(subject)])
  return render.sample_identity(rng, config.identity_spread)


def render_example(config: SyntheticConfig, subject: str, seq_type: str,
                   view: str) -> np.ndarray:
  """Renders one sequence of the dataset: uint8 [T, size, size]."""
  cond = seq_type[:2]
  cond_rng = np.random.default_rng([config.seed, 1, int(subject), _code(cond)])
  condition = render.sample_condition(cond, cond_rng)
  rng = np.random.default_rng(
      [config.seed, 2, int(subject), _code(seq_type), _code(view)])
  num_frames = int(rng.integers(config.min_frames, config.max_frames + 1))
  return render.render_sequence(
      identity_of(config, subject), condition, float(view), num_frames, rng,
      size=config.frame_size, supersample=config.supersample,
      nuisance=config.nuisance)


def _render_task(args: tuple[SyntheticConfig, str, str, str]) -> np.ndarray:
  return render_example(*args)


def build_synthetic_dataset(
    data_dir: str,
    config: SyntheticConfig = SyntheticConfig(),
    name: str = 'synthetic_gait',
    *,
    num_workers: int | None = None,
) -> str:
  """Renders the synthetic dataset and writes it (or reuses a finished one).

  Args:
    data_dir: root directory; the dataset goes to `<data_dir>/<name>/1.0.0`.
    config: what to render.
    name: dataset name.
    num_workers: rendering processes (default: the number of CPUs, at most
      8); 1 renders in this process. Does not change the output.

  Returns:
    The dataset directory.

  Raises:
    DatasetExistsError: a dataset with another config is at the destination.
  """
  dataset_dir = os.path.join(os.fspath(data_dir), name, VERSION)
  if building.check_existing(dataset_dir, config.to_json(),
                             config_key='synthetic_config',
                             renderer_version=RENDERER_VERSION,
                             label='synthetic'):
    print(f'Reusing synthetic gait dataset {dataset_dir}')
    return dataset_dir
  subjects = config.subjects
  train, test = (subjects[:config.num_train_subjects],
                 subjects[config.num_train_subjects:])
  report = {'sequences': 0, 'frames': 0, 'skipped_sequences': 0,
            'skipped_frames': 0, 'generation_seconds': 0.0,
            'note': 'procedurally rendered; nothing is skipped'}
  metadata = {
      'protocol': 'casia_b',
      'views': list(config.views),
      'types': list(config.types),
      'train_subjects': train,
      'test_subjects': test,
      'synthetic_config': config.to_json(),
      'renderer_version': RENDERER_VERSION,
      'report': report,
  }
  description = (
      'Procedurally rendered walking silhouettes in the CASIA-B layout: '
      f'{config.num_subjects} subjects, types {", ".join(config.types)}, '
      f'views {", ".join(config.views)}.')
  tasks = {split: [(sub, t, v) for sub in ids for t in config.types
                   for v in config.views]
           for split, ids in (('train', train), ('test', test))}
  return building.render_and_write(
      name, data_dir, config, tasks, _render_task, metadata,
      description=description, frame_size=config.frame_size,
      num_workers=num_workers, min_pool_sequences=MIN_POOL_SEQUENCES)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  default = SyntheticConfig()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--name', default='synthetic_gait')
  parser.add_argument('--num_subjects', type=int, default=default.num_subjects)
  parser.add_argument('--num_train_subjects', type=int,
                      default=default.num_train_subjects)
  parser.add_argument('--views', default=','.join(default.views),
                      help='comma-separated view names')
  parser.add_argument('--types', default=','.join(default.types),
                      help='comma-separated CASIA-B types')
  parser.add_argument('--min_frames', type=int, default=default.min_frames)
  parser.add_argument('--max_frames', type=int, default=default.max_frames)
  parser.add_argument('--seed', type=int, default=default.seed)
  parser.add_argument('--identity_spread', type=float,
                      default=default.identity_spread)
  parser.add_argument('--num_workers', type=int, default=None)
  parser.add_argument('--preview', default=None,
                      help='save a contact sheet PNG of the dataset here')
  args = parser.parse_args(argv)
  config = SyntheticConfig(
      num_subjects=args.num_subjects,
      num_train_subjects=args.num_train_subjects,
      views=tuple(args.views.split(',')), types=tuple(args.types.split(',')),
      min_frames=args.min_frames, max_frames=args.max_frames, seed=args.seed,
      identity_spread=args.identity_spread)
  dataset_dir = build_synthetic_dataset(args.data_dir, config, args.name,
                                        num_workers=args.num_workers)
  print(dataset_dir)
  if args.preview:
    from data_prep.synthetic import preview  # pylint: disable=g-import-not-at-top
    preview.save_preview(dataset_dir, args.preview)
    print(f'Preview saved to {args.preview}')


if __name__ == '__main__':
  main()
