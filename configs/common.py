"""The argument grammar and the recipe builder shared by the OpenGait configs.

Each ``configs/<model>_<dataset>.py`` holds only the numbers of its recipe
and returns ``build(arg, ...)``. ``arg`` is what follows the ``:`` in
``--config=configs/<file>.py:<arg>``: comma-separated tokens, in any order,

  triplet | gil_rc | gil   the loss preset (``gait_jax.losses``), at most one;
                           without one, the file's default (``triplet``, or
                           ``gil_rc`` for the GIL authors' recipe);
  smoke                    shrink the run to about a minute on a 2-core CPU
                           (see `shrink`).

e.g. ``:gil``, ``:smoke``, ``:gil_rc,smoke``. Any other token is an error that
lists the valid ones. Values can still be overridden one by one on the command
line (``--config.train.num_steps=1000``); the config is locked, so a key that
does not exist in ``gait_jax.config.base_config`` is an error too.

The recipes are OpenGait's training configs (its ``configs/<model>/*.yaml``
merged over ``default.yaml``), the GaitGL one of the GIL authors aside. What
these configs do not reproduce:

* Mixed precision: OpenGait trains every model here under fp16 autocast with
  a dynamic loss scaler (and tests Baseline, GaitBase and GaitSet-OUMVLP in
  fp16). The configs train and test in float32; on accelerators pass
  ``--config.train.compute_dtype=bfloat16``.
* Test batching: OpenGait embeds one whole sequence per GPU per step; here
  ``eval.batch_size`` sequences are padded to a length bucket and masked, so
  the value taken from OpenGait only sets how many go through at once.
* BatchNorm statistics always span the global batch (OpenGait's ``sync_BN``,
  which every recipe here with BatchNorm sets).
* Variable-length clips: ``sampler='unfixed_unordered'`` with
  ``frames_range=(min, max)`` draws F uniformly from min..max per sequence
  (as OpenGait), but pads every clip to ``max`` frames with a frame mask
  instead of concatenating them along time with ``seqL``.
* Augmentation draws (``config.data.augment``, ``gait_jax.data.augment``):
  one draw per sequence for every sampler. OpenGait draws per sequence for
  its ``fixed_*`` samplers only; with ``unfixed_*``/``all_*`` its collate
  function hands the transforms one array per device batch, so every
  sequence of a device batch gets the same perspective, flip and rotation.
* Testing during training: OpenGait's GaitSet, GaitPart and GaitGL CASIA-B
  configs set ``with_test`` (a test at every checkpoint save; published
  models were trained without it). Here ``train.eval_every`` stays 0; set it
  on the command line (``--config.train.eval_every=N``) to test every N steps.

The memory figures in the configs' docstrings are XLA's buffer estimate for
the float32 train step (forward, backward, update) compiled for one device
holding the stated share of the batch; they scale with that share.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import ml_collections

from gait_jax import config as config_lib
from gait_jax import losses
from gait_jax.data import sampling

LOSS_PRESETS = tuple(losses.PRESETS)  # ('triplet', 'gil_rc', 'gil')
SMOKE = 'smoke'
TOKENS = LOSS_PRESETS + (SMOKE,)

# Where `python -m data_prep.convert --dataset=<name> --out_dir=data` puts a
# converted dataset (<out_dir>/<name>/<version>).
DATASET_DIRS = {
    'casia_b': 'data/casia_b/1.0.0',
    'oumvlp': 'data/oumvlp/1.0.0',
    'gait3d': 'data/gait3d/1.0.0',
    'grew': 'data/grew/1.0.0',
    'ccpg': 'data/ccpg/1.0.0',
    'sustech1k': 'data/sustech1k/1.0.0',
    'casia_e': 'data/casia_e/1.0.0',
}

# OpenGait's training transforms of DeepGaitV2 and the GaitBase-DA wild
# recipes: Compose[RandomPerspective 0.2, cut, RandomHorizontalFlip 0.2,
# RandomRotate 0.2 (±10°)] (gait_jax/data/augment_geometric.py).
WILD_AUGMENT = dict(perspective_prob=0.2, hflip_prob=0.2, rotate_prob=0.2,
                    rotate_degree=10.0)

# TrackletGait's Hardness-Exclusion triplet (``triplet_HardEx.py``), the
# ``preset_loss`` of `build`: on top of every loss preset.
HARD_EXCLUSION = {p: {'triplet': {'hard_exclusion': True}}
                  for p in LOSS_PRESETS}

# The smoke run: a small synthetic dataset (rendered once into SMOKE_DATA_DIR,
# apart from the demo's), the tiny model variants and a few steps.
SMOKE_DATA_DIR = 'data/smoke'
SMOKE_SUBJECTS = dict(num_subjects=8, num_train_subjects=6)
SMOKE_STEPS = 20
SMOKE_FRAMES = 8  # Frames per clip; unfixed_unordered: the largest count.
SMOKE_FRAMES_RANGE = (4, SMOKE_FRAMES)  # unfixed_unordered's (min, max).


@dataclasses.dataclass(frozen=True)
class Args:
  """The parsed config argument.

  Attributes:
    preset: the loss preset, one of `LOSS_PRESETS`.
    smoke: shrink the run (see `shrink`).
  """
  preset: str = 'triplet'
  smoke: bool = False


def parse_arg(arg: str | None, default_preset: str = 'triplet') -> Args:
  """Parses a config argument such as ``'gil,smoke'``.

  Args:
    arg: comma-separated tokens from `TOKENS`; '' or None for the defaults.
    default_preset: the loss preset when `arg` names none.

  Returns:
    The parsed `Args`.

  Raises:
    ValueError: an unknown or repeated token, or more than one loss preset;
      the message lists the valid tokens.
  """
  tokens = [t.strip() for t in (arg or '').split(',') if t.strip()]
  valid = f'valid tokens: {", ".join(TOKENS)} (comma-separated)'
  unknown = [t for t in tokens if t not in TOKENS]
  if unknown:
    raise ValueError(f'Unknown config argument {", ".join(unknown)} in '
                     f'{arg!r}; {valid}.')
  if len(set(tokens)) != len(tokens):
    raise ValueError(f'Repeated token in config argument {arg!r}; {valid}.')
  presets = [t for t in tokens if t in LOSS_PRESETS]
  if len(presets) > 1:
    raise ValueError(f'Config argument {arg!r} names {len(presets)} loss '
                     f'presets, at most one is allowed; {valid}.')
  return Args(preset=presets[0] if presets else default_preset,
              smoke=SMOKE in tokens)


def sgd(lr: float = 0.1, weight_decay: float = 5e-4) -> dict[str, Any]:
  """``torch.optim.SGD(lr, momentum=0.9, weight_decay)`` (L2 on the grads)."""
  return dict(name='sgd', lr=lr, momentum=0.9, nesterov=False,
              weight_decay=weight_decay)


def adam(lr: float = 1e-4, weight_decay: float = 0.0) -> dict[str, Any]:
  """``torch.optim.Adam(lr, weight_decay)`` with PyTorch's betas and eps."""
  return dict(name='adam', lr=lr, weight_decay=weight_decay, b1=0.9,
              b2=0.999, eps=1e-8)


def adamw(lr: float, weight_decay: float,
          param_groups: tuple[tuple[Any, ...], ...] = ()) -> dict[str, Any]:
  """``torch.optim.AdamW(lr, weight_decay)`` (decoupled), PyTorch's betas
  and eps, over ``param_groups`` (``gait_jax.optim``)."""
  return dict(name='adamw', lr=lr, weight_decay=weight_decay, b1=0.9,
              b2=0.999, eps=1e-8, param_groups=tuple(param_groups))


def stepped_cosine(total_steps: int, step_every: int = 1000,
                   min_lr: float = 1e-6) -> dict[str, Any]:
  """OpenGait SwinGait's ``adjust_learning_rate``: the cosine over
  ``total_steps``, re-set every ``step_every`` steps, floored at ``min_lr``,
  then ``min_lr``."""
  return dict(name='stepped_cosine', milestones=(), total_steps=total_steps,
              step_every=step_every, min_lr=min_lr)


def multistep(*milestones: int) -> dict[str, Any]:
  """``MultiStepLR(milestones, gamma=0.1)`` stepped once per update."""
  return dict(name='multistep', milestones=tuple(milestones), gamma=0.1)


def cosine(warmup_steps: int, warmup_init_lr: float,
           min_lr: float) -> dict[str, Any]:
  """timm's ``CosineLRScheduler`` over the whole run, with linear warm-up."""
  return dict(name='cosine', milestones=(), warmup_steps=warmup_steps,
              warmup_init_lr=warmup_init_lr, min_lr=min_lr)


def build(arg: str | None, *, model: str, dataset: str,
          optim: Mapping[str, Any], schedule: Mapping[str, Any],
          num_steps: int, pk: tuple[int, int], sampler: str,
          batch_shuffle: bool, eval_batch_size: int, frames_skip: int = 0,
          num_frames: int = 30, frames_range: tuple[int, int] | None = None,
          frame_limit: int = 0, ce: Mapping[str, Any] | None = None,
          augment: Mapping[str, Any] | None = None,
          preset_loss: Mapping[str, Mapping[str, Any]] | None = None,
          default_preset: str = 'triplet') -> ml_collections.ConfigDict:
  """A full config: `base_config()` filled with one training recipe.

  Args:
    arg: the config argument (see `parse_arg`).
    model: registered model name; its variant is `dataset`.
    dataset: a key of `DATASET_DIRS` (model variant and dataset directory).
    optim: the ``config.optim`` values (`sgd`, `adam` or `adamw`).
    schedule: the ``config.schedule`` values (`multistep`, `cosine` or
      `stepped_cosine`).
    num_steps: total optimizer updates.
    pk: (P identities, K sequences each) of the global batch.
    sampler: training frame sampler, 'fixed_unordered', 'fixed_ordered',
      'unfixed_unordered' or 'tracklet' (``gait_jax.data.sampling``).
    batch_shuffle: shuffle the P×K batch order.
    eval_batch_size: test sequences per forward pass.
    frames_skip: extra window of 'fixed_ordered'.
    num_frames: frames per clip of the 'fixed_*' samplers (OpenGait's
      ``frames_num_fixed``).
    frames_range: (min, max) frames per clip of 'unfixed_unordered'
      (OpenGait's ``frames_num_min``/``frames_num_max``), required by it and
      only by it; clips are padded to max (``data.num_frames = max``).
    frame_limit: evaluate on at most this many leading frames (0: all).
    ce: the CE term (weight, scale, label_smoothing); None: no CE term.
    augment: ``config.data.augment`` values (``gait_jax.data.augment``),
      e.g. ``dict(perspective_prob=0.2, hflip_prob=0.2, rotate_prob=0.2,
      rotate_degree=10.0)``; None: no augmentation.
    preset_loss: per-preset extra loss sections, e.g. ``{'gil_rc':
      {'pair_softmax': {'weight': 1.0}}}``.
    default_preset: the loss preset when `arg` names none.

  Returns:
    The config (unlocked; launch.py locks it).

  Raises:
    ValueError: `frames_range` missing for 'unfixed_unordered', given for
      another sampler, or not (min, max) with 1 <= min <= max.
  """
  args = parse_arg(arg, default_preset)
  if (sampler == 'unfixed_unordered') != (frames_range is not None):
    raise ValueError(f'frames_range={frames_range!r} with sampler='
                     f'{sampler!r}: unfixed_unordered needs a (min, max) '
                     'frame range, the other samplers take num_frames.')
  c = config_lib.base_config()
  c.model.name = model
  c.model.variant = dataset
  loss_sections = dict((preset_loss or {}).get(args.preset, {}))
  if ce is not None:
    loss_sections['ce'] = dict(ce)
  c.loss = losses.get_loss_config(args.preset, **loss_sections)

  c.data.source = 'tfds'
  c.data.dataset_dir = DATASET_DIRS[dataset]
  c.data.p, c.data.k = pk
  c.data.batch_shuffle = batch_shuffle
  c.data.frame_sampler = sampler
  c.data.num_frames = num_frames
  c.data.frames_skip = frames_skip
  if frames_range is not None:
    low, high = sampling.check_frames_range(frames_range)
    c.data.frames_range = (low, high)
    c.data.num_frames = high  # The padded clip length.
  if augment is not None:
    c.data.augment.update(dict(augment))

  c.optim.update(dict(optim))
  c.schedule.update(dict(schedule))
  c.train.num_steps = num_steps
  c.eval.batch_size = eval_batch_size
  c.eval.frame_limit = frame_limit
  if args.smoke:
    shrink(c)
  return c


def _scaled(step: int, total: int) -> int:
  return max(1, round(step * SMOKE_STEPS / total))


def shrink(c: ml_collections.ConfigDict) -> None:
  """Turns a full config into a smoke run, in place.

  Tiny model variant, a 4×2 batch of 8-frame clips (4 to 8 frames for
  'unfixed_unordered', `SMOKE_FRAMES_RANGE`; 'tracklet' lengths scaled by
  the same factor as the clip), `SMOKE_STEPS` steps with
  the schedule's milestones, warm-up and cosine length (and the stepped
  cosine's `step_every`) scaled to match, no `train.init_from`, frequent
  logging and checkpoints, a small evaluation, and an 8-subject synthetic
  dataset (6 train subjects). The dataset can still be overridden on the command line:
  ``--config.data.source=tfds`` trains on ``config.data.dataset_dir``.

  Args:
    c: a config built by `build`.
  """
  total = c.train.num_steps
  c.model.variant = 'tiny'
  c.data.source = 'synthetic'
  c.data.data_dir = SMOKE_DATA_DIR
  c.data.synthetic.update(SMOKE_SUBJECTS)
  c.data.p, c.data.k = 4, 2
  if c.data.frame_sampler == 'tracklet':  # Lengths shrink with the clip.
    c.data.tracklet_lengths = tuple(
        max(1, n * SMOKE_FRAMES // c.data.num_frames)
        for n in c.data.tracklet_lengths)
  c.data.num_frames = SMOKE_FRAMES
  if c.data.frame_sampler == 'unfixed_unordered':
    c.data.frames_range = SMOKE_FRAMES_RANGE
  c.schedule.milestones = tuple(_scaled(m, total)
                                for m in c.schedule.milestones)
  if c.schedule.warmup_steps:
    c.schedule.warmup_steps = _scaled(c.schedule.warmup_steps, total)
  if c.schedule.total_steps:  # A cosine shorter than the run.
    c.schedule.total_steps = _scaled(c.schedule.total_steps, total)
  if c.schedule.name == 'stepped_cosine':
    c.schedule.step_every = _scaled(c.schedule.step_every, total)
  c.train.init_from = ''  # No other run's checkpoint in a smoke run.
  c.train.num_steps = SMOKE_STEPS
  c.train.log_every = 5
  c.train.ckpt_every = 10
  c.eval.batch_size = 16
  c.eval.buckets = (32, 64)
  c.eval.plots = False
