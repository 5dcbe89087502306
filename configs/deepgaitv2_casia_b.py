r"""DeepGaitV2 (P3D) on CASIA-B: OpenGait's
``configs/deepgaitv2/DeepGaitV2_casia_b.yaml``.

  python -m data_prep.convert --dataset=casia_b --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/deepgaitv2_casia_b.py \
      --workdir=workdirs/deepgaitv2_casia_b
  python launch.py --config=configs/deepgaitv2_casia_b.py:gil \
      --workdir=workdirs/deepgaitv2_casia_b_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 20k, 40k and
50k, 60k steps; P×K 8×16, shuffled; 30 ordered frames of a random 34-frame
window (``fixed_ordered``, skip 4); OpenGait's training augmentation, per
sequence: random perspective (p 0.2, before the cut), random horizontal flip
(p 0.2), random rotation (p 0.2, ±10°); see
``gait_jax/data/augment_geometric.py``; triplet 1.0 (margin 0.2) + CE 1.0
(scale 16, label smoothing 0.1); test batch 4, first 720 frames. Backbone
layers [1, 1, 1, 1], channels 64/128/256/512.

Reference: OpenGait's model zoo lists no DeepGaitV2 rank-1 on CASIA-B.

Hardware: The float32 train step of the 8×16 batch needs about 51 GiB on one
device (12.7 GiB per device over 4, 6.4 over 8; XLA's estimate with the CPU
compiler, ``--mode=compile``): one 80 GB GPU, four 16 GB GPUs (12.7 GiB each),
or eight 16 GB GPUs (6.4 GiB each). OpenGait trains it with fp16 autocast;
pass ``--config.train.compute_dtype=bfloat16`` on accelerators. OpenGait's
recipe uses 4 GPUs (its test batch, one sequence per GPU).
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='deepgaitv2', dataset='casia_b',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(20_000, 40_000, 50_000), num_steps=60_000,
      pk=(8, 16), sampler='fixed_ordered', batch_shuffle=True,
      num_frames=30, frames_skip=4,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      augment=common.WILD_AUGMENT,
      eval_batch_size=4, frame_limit=720)
