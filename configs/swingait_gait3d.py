r"""SwinGait on Gait3D: OpenGait's
``configs/swingait/swingait3D_B1442C2_Gait3D.yaml``.

SwinGait starts from a trained DeepGaitV2 (OpenGait: its 60k Gait3D
checkpoint, ``restore_hint`` with ``restore_ckpt_strict: false`` and
``optimizer_reset``). Train that first (``configs/deepgaitv2_gait3d.py``),
then point ``train.init_from`` at its workdir (the default below is the
workdir of the command given in that config):

  python -m data_prep.convert --dataset=gait3d --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/deepgaitv2_gait3d.py \
      --workdir=workdirs/deepgaitv2_gait3d
  python launch.py --config=configs/swingait_gait3d.py \
      --workdir=workdirs/swingait_gait3d \
      --config.train.init_from=workdirs/deepgaitv2_gait3d

``train.init_from`` loads every parameter and BatchNorm statistic whose path
and shape match (``gait_jax.warm_start``): the stem ``layer0..2`` and, as in
OpenGait, ``FCs`` and ``BNNecks`` (same shapes at Gait3D's sizes); the
transformer keeps its init; the optimizer state is fresh. A run that resumes
from its own workdir ignores it. ``smoke`` clears it.

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``.

Recipe: AdamW lr 3e-4, weight decay 0.02, in OpenGait's parameter groups
(`PARAM_GROUPS`): the transformer's parameters whose name contains
``patch_embed``, ``norm`` or ``relative_position_bias_table`` without weight
decay; ``layer0..2``, ``FCs`` and ``BNNecks`` at lr ×0.1. Learning rate:
OpenGait's model sets it in its forward pass (its MultiStepLR at 1e8 is a
no-op): every 1000 steps max(lr·½(1 + cos(π·t/60000)), 1e-6) per group, then
1e-6 from step 60k; 80k steps. P×K 32×4, shuffled; 30 ordered frames of a
random 34-frame window (``fixed_ordered``, skip 4); DeepGaitV2's augmentation
(perspective, flip, rotation, each p 0.2); triplet 1.0 (margin 0.2) + CE 1.0
(scale 16, label smoothing 0.1); stochastic depth 0.1 (a 'dropout' rng per
step and device); test batch 4, first 720 frames. Stem layers [1, 4]
(channels 64, 128), Swin depths [4, 2], heads [16, 32], window 3×3×5.

Frames: uncut 64×64, as OpenGait feeds SwinGait (``BaseSilTransform``):
``data.cut_width = False``; the augmentations run on the whole frames.

Reference (OpenGait model zoo, ``docs/1.model_zoo.md``): rank-1 75.0 on the
Gait3D protocol (``gait3d``: rank-1/5/10, mAP, mINP).

Hardware: not measured here. The network has 25.5 M parameters (11.1 M in
the backbone); the transformer runs on 30 × 15 × 10 tokens of 256-512
channels per clip. OpenGait trains it on 4 GPUs with fp16 autocast; pass
``--config.train.compute_dtype=bfloat16`` on accelerators and measure with
``launch.py --mode=compile`` before a full run.
"""

from configs import common

# OpenGait SwinGait.get_optimizer, on this model's parameter paths
# (`gait_jax.optim`: (regex, lr_mult, weight_decay or None), first match).
PARAM_GROUPS = (
    (r'^transformer/.*(patch_embed|norm|relative_position_bias_table)', 1.0,
     0.0),
    (r'^(layer[0-4]|FCs|BNNecks)/', 0.1, None),
)
# The workdir of configs/deepgaitv2_gait3d.py's command.
DEEPGAITV2_WORKDIR = 'workdirs/deepgaitv2_gait3d'


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  c = common.build(
      arg, model='swingait', dataset='gait3d',
      optim=common.adamw(lr=3e-4, weight_decay=0.02,
                         param_groups=PARAM_GROUPS),
      schedule=common.stepped_cosine(60_000), num_steps=80_000,
      pk=(32, 4), sampler='fixed_ordered', batch_shuffle=True,
      num_frames=30, frames_skip=4,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      augment=common.WILD_AUGMENT,
      eval_batch_size=4, frame_limit=720)
  c.data.cut_width = False
  if not common.parse_arg(arg).smoke:
    c.train.init_from = DEEPGAITV2_WORKDIR
  return c
