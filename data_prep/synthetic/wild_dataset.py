"""The Gait3D-style synthetic gait dataset ("wild" mode).

Subjects '0000', '0001', ...; each has 6-10 sequences named like Gait3D's:
type `camid<C>_videoid<V>` (a camera and a video of it), view `seq<S>` (the
S-th tracklet of that video). Sequences are rendered by `wild.py` with a
random camera, a possibly turning path, clothes and bags from the subject's
own wardrobe, occluders, the frame border and segmentation noise, and
written as a TFDS array_record dataset (`data_prep.tfds_writer`, the same
features as the CASIA-B-like set) with splits `train` (the first
`num_train_subjects` subjects) and `test`. The metadata names the protocol
'gait3d' and holds its probe set, one sequence key `subject-type-view` per
test subject, as `protocol_options.probe_set` (which the evaluator applies).
Everything is a pure function of the config.

  python -m data_prep.synthetic.wild_dataset --data_dir=/tmp/gait_data \
      --preview=/tmp/wild_preview.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import dataclasses
import json
import os

import numpy as np

from data_prep.synthetic import building
from data_prep.synthetic import render
from data_prep.synthetic import wild

# Bump when the renderer's output changes, so stale datasets are detected.
RENDERER_VERSION = 1
VERSION = building.VERSION
MIN_POOL_SEQUENCES = 64  # fewer: render in this process
LENGTH_SIGMA = 0.6  # spread of log(length)


@dataclasses.dataclass(frozen=True)
class WildDatasetConfig:
  """What the wild synthetic dataset contains (stored in its metadata).

  Attributes:
    num_subjects: number of identities ('0000', '0001', ...).
    num_train_subjects: the first this many subjects form the train split.
    min_sequences: fewest sequences per subject (>= 2: a probe and a
      gallery sequence).
    max_sequences: most sequences per subject.
    min_frames: shortest rendered sequence.
    max_frames: longest rendered sequence.
    mean_frames: typical length (lengths are log-normal, clipped).
    num_cameras: camera ids 'camid0' ... are drawn from this many.
    seed: master seed.
    identity_spread: spread of body and gait parameters between identities.
    wild: nuisance strengths (`wild.WildConfig`; a dict works too).
  """
  num_subjects: int = 100
  num_train_subjects: int = 60
  min_sequences: int = 6
  max_sequences: int = 10
  min_frames: int = 10
  max_frames: int = 150
  mean_frames: float = 40.0
  num_cameras: int = 39
  seed: int = 0
  identity_spread: float = 1.0
  wild: wild.WildConfig = wild.WildConfig()

  def __post_init__(self):
    if isinstance(self.wild, dict):
      object.__setattr__(self, 'wild', wild.WildConfig(**self.wild))
    if not 1 <= self.num_train_subjects < self.num_subjects:
      raise ValueError(
          f'num_train_subjects={self.num_train_subjects} must be in '
          f'[1, num_subjects={self.num_subjects}) so both splits have '
          'subjects')
    if not 2 <= self.min_sequences <= self.max_sequences:
      raise ValueError(f'need 2 <= min_sequences={self.min_sequences} <= '
                       f'max_sequences={self.max_sequences}')
    if not 1 <= self.min_frames <= self.max_frames:
      raise ValueError(f'need 1 <= min_frames={self.min_frames} <= '
                       f'max_frames={self.max_frames}')
    if self.num_cameras < 1:
      raise ValueError(f'num_cameras={self.num_cameras} must be >= 1')

  @property
  def subjects(self) -> list[str]:
    return [f'{i:04d}' for i in range(self.num_subjects)]

  @property
  def train_subjects(self) -> list[str]:
    return self.subjects[:self.num_train_subjects]

  @property
  def test_subjects(self) -> list[str]:
    return self.subjects[self.num_train_subjects:]

  def to_json(self) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(self)))


def _rng(config: WildDatasetConfig, stream: int, *ints: int):
  return np.random.default_rng([config.seed, stream, *ints])


def sequence_plan(config: WildDatasetConfig,
                  subject: str) -> list[tuple[str, str, int]]:
  """(type, view, rendered frames) of every sequence of a subject.

  Sequences come in videos of 1-3 tracklets; the videos are distinct
  (camera, video id) pairs.
  """
  rng = _rng(config, 10, int(subject))
  count = int(rng.integers(config.min_sequences, config.max_sequences + 1))
  mu = np.log(config.mean_frames) - LENGTH_SIGMA ** 2 / 2
  plan, videos = [], set()
  while len(plan) < count:
    video = (int(rng.integers(config.num_cameras)),
             int(rng.integers(1, 9 + len(videos))))
    tracklets = min(int(rng.integers(1, 4)), count - len(plan))
    if video in videos:
      continue
    videos.add(video)
    for s in range(tracklets):
      length = np.exp(rng.normal(mu, LENGTH_SIGMA))
      plan.append((f'camid{video[0]}_videoid{video[1]}', f'seq{s}',
                   int(np.clip(round(length), config.min_frames,
                               config.max_frames))))
  return plan


def probe_set(config: WildDatasetConfig) -> list[str]:
  """One `subject-type-view` key per test subject (sorted)."""
  keys = []
  for subject in config.test_subjects:
    plan = sequence_plan(config, subject)
    seq_type, view, _ = plan[int(_rng(config, 12, int(subject)).integers(
        len(plan)))]
    keys.append(f'{subject}-{seq_type}-{view}')
  return sorted(keys)


def render_sequence(config: WildDatasetConfig, subject: str, seq_type: str,
                    view: str) -> wild.WildSequence:
  """Renders one sequence of the dataset, with its nuisance record."""
  plan = sequence_plan(config, subject)
  index = [(t, v) for t, v, _ in plan].index((seq_type, view))
  identity = render.sample_identity(_rng(config, 0, int(subject)),
                                    config.identity_spread)
  wardrobe = wild.sample_wardrobe(_rng(config, 1, int(subject)))
  return wild.render_wild_sequence(
      identity, wardrobe, plan[index][2],
      (config.seed, 2, int(subject), index), config.wild)


def render_example(config: WildDatasetConfig, subject: str, seq_type: str,
                   view: str) -> np.ndarray:
  """The stored frames of one sequence: uint8 [T, 64, 64]."""
  return render_sequence(config, subject, seq_type, view).frames


def _render_task(args: tuple[WildDatasetConfig, str, str, str]) -> np.ndarray:
  return render_example(*args)


def build_wild_dataset(
    data_dir: str,
    config: WildDatasetConfig = WildDatasetConfig(),
    name: str = 'synthetic_gait3d',
    *,
    num_workers: int | None = None,
) -> str:
  """Renders the wild synthetic dataset and writes it (or reuses it).

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
                             config_key='wild_config',
                             renderer_version=RENDERER_VERSION,
                             label='wild synthetic'):
    print(f'Reusing wild synthetic gait dataset {dataset_dir}')
    return dataset_dir
  train, test = config.train_subjects, config.test_subjects
  plans = {s: sequence_plan(config, s) for s in config.subjects}
  probes = probe_set(config)
  report = {'sequences': 0, 'frames': 0, 'skipped_sequences': 0,
            'skipped_frames': 0, 'generation_seconds': 0.0,
            'note': 'procedurally rendered; frames dropped by the '
                    'segmentation noise are part of the render'}
  metadata = {
      'protocol': 'gait3d',
      'views': sorted({v for p in plans.values() for _, v, _ in p}),
      'types': sorted({t for p in plans.values() for t, _, _ in p}),
      'train_subjects': train,
      'test_subjects': test,
      'protocol_options': {'probe_set': probes},
      'wild_config': config.to_json(),
      'renderer_version': RENDERER_VERSION,
      'report': report,
  }
  num_sequences = sum(len(p) for p in plans.values())
  description = (
      'Procedurally rendered walking silhouettes in the Gait3D layout: '
      f'{config.num_subjects} subjects, {num_sequences} sequences with '
      'random cameras, turns, occluders, frame-border cuts and '
      'segmentation noise.')
  tasks = {split: [(sub, t, v) for sub in ids
                   for t, v, _ in plans[sub]]
           for split, ids in (('train', train), ('test', test))}
  return building.render_and_write(
      name, data_dir, config, tasks, _render_task, metadata,
      description=description, frame_size=config.wild.frame_size,
      num_workers=num_workers, min_pool_sequences=MIN_POOL_SEQUENCES)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  default = WildDatasetConfig()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--name', default='synthetic_gait3d')
  for field in dataclasses.fields(WildDatasetConfig):
    if field.name != 'wild':
      value = getattr(default, field.name)
      parser.add_argument(f'--{field.name}', type=type(value), default=value)
  for field in dataclasses.fields(wild.WildConfig):
    if field.name != 'frame_size':
      parser.add_argument(f'--{field.name}', type=float,
                          default=getattr(default.wild, field.name),
                          help='nuisance strength (0 = off)')
  parser.add_argument('--num_workers', type=int, default=None)
  parser.add_argument('--preview', default=None,
                      help='save a PNG strip of sample sequences here')
  args = vars(parser.parse_args(argv))
  knobs = {f.name: args.pop(f.name) for f in dataclasses.fields(
      wild.WildConfig) if f.name != 'frame_size'}
  data_dir, name = args.pop('data_dir'), args.pop('name')
  num_workers, preview_path = args.pop('num_workers'), args.pop('preview')
  config = WildDatasetConfig(**args, wild=wild.WildConfig(**knobs))
  dataset_dir = build_wild_dataset(data_dir, config, name,
                                   num_workers=num_workers)
  print(dataset_dir)
  if preview_path:
    from data_prep.synthetic import preview  # pylint: disable=g-import-not-at-top
    preview.save_sequence_strip(dataset_dir, preview_path)
    print(f'Preview saved to {preview_path}')


if __name__ == '__main__':
  main()
