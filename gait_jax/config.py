"""The configuration schema every experiment config starts from.

A config file in ``configs/`` calls ``base_config()``, sets its values and
returns the result; ``launch.py`` locks it, so a mistyped key on the command
line (``--config.optim.lrr=0.1``) or in a file raises an error that names it.

Sections: ``model`` (passed to ``gait_jax.models.get_model``), ``loss`` (see
``gait_jax.losses.get_loss_config``), ``data``, ``optim``, ``schedule``,
``train`` and ``eval``.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by all experiments (OpenGait's ``default.yaml`` role)."""
  from gait_jax import losses  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict()
  c.seed = 0  # Fixes data order, frame sampling and parameter init.

  # Passed as get_model(**model); num_classes=-1 means "from the data".
  c.model = ml_collections.ConfigDict({
      'name': 'gaitset', 'variant': 'casia_b', 'num_classes': -1,
      # Op implementations and the CPU 2-D convolution's kernel gradient
      # (see gait_jax.models.ops); neither changes the parameters.
      'ops': 'auto', 'conv_kernel_grad': 'auto',
      # Rematerialise the backbone's blocks in training: 'none', 'blocks'
      # or 'dots_saveable' (gait_jax.models.remat); less activation memory
      # for about one more backbone forward pass, same parameters.
      'remat': 'none'})

  c.loss = losses.get_loss_config('triplet')

  c.data = ml_collections.ConfigDict()
  # 'tfds': an existing dataset; 'synthetic' (CASIA-B-like) or
  # 'synthetic_wild' (Gait3D-like): rendered on first use.
  c.data.source = 'tfds'
  c.data.dataset_dir = ''  # TFDS dataset dir: <data_dir>/<name>/<version>.
  c.data.data_dir = 'data'  # Where the synthetic dataset is built.
  # Passed to data_prep.synthetic.dataset.SyntheticConfig.
  c.data.synthetic = ml_collections.ConfigDict({
      'num_subjects': 40, 'num_train_subjects': 24, 'seed': 0,
      'views': ('000', '018', '036', '054', '072', '090', '108', '126', '144',
                '162', '180'),
      'types': ('nm-01', 'nm-02', 'nm-03', 'nm-04', 'nm-05', 'nm-06', 'bg-01',
                'bg-02', 'cl-01', 'cl-02'),
      'min_frames': 20, 'max_frames': 40})
  # Passed to data_prep.synthetic.wild_dataset.WildDatasetConfig; `wild`
  # holds the nuisance strengths (data_prep.synthetic.wild.WildConfig,
  # 0 = off, 1 = the default strength).
  c.data.synthetic_wild = ml_collections.ConfigDict({
      'num_subjects': 100, 'num_train_subjects': 60, 'min_sequences': 6,
      'max_sequences': 10, 'min_frames': 10, 'max_frames': 150,
      'mean_frames': 40.0, 'num_cameras': 39, 'seed': 0,
      'identity_spread': 1.0,
      'wild': ml_collections.ConfigDict({
          'occlusion': 1.0, 'border': 1.0, 'seg_noise': 1.0,
          'view_change': 1.0, 'elevation': 1.0, 'azimuth': 1.0,
          'distance': 1.0, 'perspective': 1.0, 'gait_jitter': 1.0,
          'clothing': 1.0, 'carrying': 1.0, 'frame_size': 64})})
  c.data.p = 8  # Identities per global batch.
  c.data.k = 16  # Sequences per identity.
  c.data.batch_shuffle = False
  # Training frame sampler (gait_jax.data.sampling.sample_frames):
  # 'fixed_unordered', 'fixed_ordered' (a window of num_frames + frames_skip)
  # or 'unfixed_unordered' (F uniform in frames_range per sequence, padded to
  # num_frames = frames_range[1] with the frame mask False on padding), or
  # 'tracklet' (TrackletGait: num_frames // L consecutive-frame tracklets,
  # L drawn per sequence from tracklet_lengths with tracklet_probs; each
  # length must divide num_frames, TrackletGait uses num_frames = 32).
  c.data.frame_sampler = 'fixed_unordered'
  c.data.num_frames = 30
  c.data.frames_skip = 0
  c.data.frames_range = (0, 0)  # (min, max); used by unfixed_unordered only.
  c.data.tracklet_lengths = (8, 16, 32)  # Used by 'tracklet' only.
  c.data.tracklet_probs = (0.2, 0.3, 0.5)
  # Training augmentation (gait_jax.data.augment), per sequence, in
  # OpenGait's Compose order: RandomPerspective on the uncut frames, cut,
  # RandomHorizontalFlip, RandomRotate, RandomErasing; probability 0 = off.
  # OpenGait's unfixed_*/all_* samplers share one draw per device batch;
  # here every sequence has its own draws.
  c.data.augment = ml_collections.ConfigDict({
      'perspective_prob': 0.0, 'hflip_prob': 0.0,
      'rotate_prob': 0.0, 'rotate_degree': 10.0,  # Angle U(-deg, deg).
      'erase_prob': 0.0,
      'erase_area': (0.05, 0.2),  # Erased fraction of H·W: U(sl, sh).
      'erase_ratio': 0.3,  # Aspect ratio h/w: U(r1, 1/r1).
      'occlusion_prob': 0.0})  # RG-Gait half patch, last (augment_occlusion).
  # Cut 64×64 frames to 64×44 (OpenGait's BaseSilCuttingTransform) or keep
  # them whole (BaseSilTransform: SwinGait's recipe).
  c.data.cut_width = True
  c.data.workers = 0  # grain worker processes; 0 loads in threads.
  c.data.prefetch = 2

  # name: 'sgd', 'adam' (L2 weight decay) or 'adamw' (decoupled).
  # param_groups: ((regex, lr_mult, weight_decay or None), ...) on the
  # '/'-joined parameter paths, first match wins (gait_jax.optim).
  c.optim = ml_collections.ConfigDict({
      'name': 'sgd', 'lr': 0.1, 'momentum': 0.9, 'nesterov': False,
      'weight_decay': 5e-4, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-8,
      'param_groups': ()})
  # name: 'constant', 'multistep', 'cosine' or 'stepped_cosine' (SwinGait:
  # the cosine re-set every step_every steps, floored at min_lr);
  # total_steps: the cosines' length, 0 = train.num_steps.
  c.schedule = ml_collections.ConfigDict({
      'name': 'multistep', 'milestones': (10_000, 20_000, 30_000),
      'gamma': 0.1, 'warmup_steps': 0, 'warmup_init_lr': 0.0,
      'min_lr': 0.0, 'step_every': 1000, 'total_steps': 0})

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 40_000
  c.train.log_every = 100
  c.train.ckpt_every = 1_000
  c.train.keep_ckpts = 3
  c.train.compute_dtype = 'float32'  # 'bfloat16' on accelerators.
  c.train.num_devices = -1  # -1: all devices.
  c.train.eval_at_end = True
  # Evaluate on the test split every this many steps during training
  # (OpenGait's with_test); 0 = off. Writes eval/<probe set> scalars and
  # eval_<step>.json to the workdir.
  c.train.eval_every = 0
  # Start a fresh run from the matching params/BatchNorm stats (same path
  # and shape) of another gait_jax workdir's newest checkpoint, optimizer
  # state fresh (gait_jax.warm_start; OpenGait's restore_hint with
  # restore_ckpt_strict false + optimizer_reset). Ignored when resuming.
  c.train.init_from = ''
  c.train.init_from_strict = False

  c.eval = ml_collections.ConfigDict()
  c.eval.protocol = ''  # '' = the dataset's own (metadata 'protocol').
  c.eval.metric = 'euc'
  c.eval.distance_backend = 'numpy'  # Or 'jax': jitted (big sets on GPU).
  c.eval.batch_size = 16
  c.eval.buckets = (32, 64, 128, 256)
  c.eval.frame_limit = 0  # 0 = all frames.
  c.eval.plots = True
  return c
