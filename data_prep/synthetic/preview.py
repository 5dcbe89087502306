"""Contact sheet of a gait dataset, to check the silhouettes by eye.

  python -m data_prep.synthetic.preview --dataset_dir=data/synthetic_gait3d/1.0.0 \
      --out=strip.png   # a strip of test sequences, one row each
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from data_prep import tfds_writer  # pylint: disable=g-import-not-at-top


def _pick_views(views: Sequence[str], targets: Sequence[float]) -> list[str]:
  """The available views nearest to the target azimuths, without repeats."""
  picked = []
  for target in targets:
    view = min(views, key=lambda v: abs(float(v) - target))
    if view not in picked:
      picked.append(view)
  return picked


def save_preview(dataset_dir: str, path: str, *, split: str = 'test',
                 views: Sequence[float] = (0, 54, 90, 126, 180),
                 num_frames: int = 10,
                 step: int = 3) -> None:
  """Saves rows of frames of one subject: conditions x a few views.

  Args:
    dataset_dir: a gait dataset directory.
    path: output PNG path.
    split: split to take the subject from.
    views: azimuths to show (the nearest available views are used).
    num_frames: frames shown per row.
    step: take every `step`-th frame.
  """
  index = tfds_writer.read_index(dataset_dir, split)
  meta = tfds_writer.read_gait_metadata(dataset_dir)
  subject = index[0]['subject']
  wanted_types = []
  for cond in ('nm', 'bg', 'cl'):
    of_cond = [t for t in meta['types'] if t.startswith(cond)]
    wanted_types += of_cond[:1]
  shown = _pick_views(meta['views'], views)
  where = {(r['subject'], r['type'], r['view']): i
           for i, r in enumerate(index)}
  source = tfds_writer.open_gait_source(dataset_dir, split)
  rows, labels = [], []
  for seq_type in wanted_types:
    for view in shown:
      i = where.get((subject, seq_type, view))
      if i is None:
        continue
      frames = source[i]['frames'][::step][:num_frames]  # [n, H, W]
      pad = num_frames - len(frames)
      frames = np.pad(frames, ((0, pad), (1, 1), (1, 1)),
                      constant_values=96)  # grey frame borders
      rows.append(np.concatenate(list(frames), 1))
      labels.append(f'{seq_type} {view}')
  sheet = np.concatenate(rows, 0)  # [rows * (H + 2), cols * (W + 2)]
  height = sheet.shape[0] / sheet.shape[1] * 12
  fig, ax = plt.subplots(figsize=(12, height + 0.6), dpi=100)
  ax.imshow(sheet, cmap='gray', vmin=0, vmax=255, interpolation='nearest')
  row_h = sheet.shape[0] / len(rows)
  ax.set_yticks((np.arange(len(rows)) + 0.5) * row_h, labels, fontsize=8)
  ax.set_xticks([])
  ax.set_title(f'subject {subject} ({split} split): frames 0, {step}, '
               f'{2 * step}, ... of nm, bg and cl sequences', fontsize=10)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def save_sequence_strip(dataset_dir: str, path: str, *, split: str = 'test',
                        num_sequences: int = 8, num_frames: int = 12,
                        step: int = 3) -> None:
  """Saves a strip of sample sequences: one row each, frames subsampled.

  The rows are the first sequences of different subjects in record order
  (a dataset of any layout, e.g. the wild Gait3D-style one).

  Args:
    dataset_dir: a gait dataset directory.
    path: output PNG path.
    split: split to take the sequences from.
    num_sequences: rows.
    num_frames: frames shown per row.
    step: take every `step`-th frame.
  """
  index = tfds_writer.read_index(dataset_dir, split)
  picked, seen = [], set()
  for i, r in enumerate(index):
    if r['subject'] not in seen and len(picked) < num_sequences:
      seen.add(r['subject'])
      picked.append(i)
  source = tfds_writer.open_gait_source(dataset_dir, split)
  rows, labels = [], []
  for i in picked:
    r = index[i]
    frames = source[i]['frames'][::step][:num_frames]  # [n, H, W]
    frames = np.pad(frames, ((0, num_frames - len(frames)), (1, 1), (1, 1)),
                    constant_values=96)  # grey frame borders
    rows.append(np.concatenate(list(frames), 1))
    labels.append(f"{r['subject']}-{r['type']}-{r['view']} ({r['length']})")
  sheet = np.concatenate(rows, 0)  # [rows * (H + 2), cols * (W + 2)]
  height = sheet.shape[0] / sheet.shape[1] * 12
  fig, ax = plt.subplots(figsize=(14, height + 0.6), dpi=100)
  ax.imshow(sheet, cmap='gray', vmin=0, vmax=255, interpolation='nearest')
  row_h = sheet.shape[0] / len(rows)
  ax.set_yticks((np.arange(len(rows)) + 0.5) * row_h, labels, fontsize=7)
  ax.set_xticks([])
  ax.set_title(f'{split} split: frames 0, {step}, {2 * step}, ... of one '
               'sequence per subject (length in brackets)', fontsize=10)
  fig.subplots_adjust(left=0.2, right=0.98, top=0.94, bottom=0.02)
  fig.savefig(path)
  plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dataset_dir', required=True)
  parser.add_argument('--out', required=True, help='PNG path')
  parser.add_argument('--split', default='test')
  parser.add_argument('--num_sequences', type=int, default=8)
  args = parser.parse_args(argv)
  save_sequence_strip(args.dataset_dir, args.out, split=args.split,
                      num_sequences=args.num_sequences)
  print(f'Preview of {args.dataset_dir} saved to {args.out}')


if __name__ == '__main__':
  main()
