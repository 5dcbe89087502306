r"""DeepGaitV2 (P3D) on SUSTech1K: OpenGait's
``configs/deepgaitv2/DeepGaitV2_sustech1k.yaml``.

  python -m data_prep.convert --dataset=sustech1k --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/deepgaitv2_sustech1k.py \
      --workdir=workdirs/deepgaitv2_sustech1k
  python launch.py --config=configs/deepgaitv2_sustech1k.py:gil \
      --workdir=workdirs/deepgaitv2_sustech1k_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 20k, 30k and
40k, 50k steps; P×K 8×8, shuffled; 10 ordered frames of a random 14-frame
window (``fixed_ordered``, skip 4); OpenGait's training augmentation, per
sequence: random perspective (p 0.2, before the cut), random horizontal flip
(p 0.2), random rotation (p 0.2, ±10°); see
``gait_jax/data/augment_geometric.py``; triplet 1.0 (margin 0.2) + CE 1.0
(scale 16, label smoothing 0.1); test batch 4, first 720 frames. Backbone
layers [1, 1, 1, 1], channels 64/128/256/512.

Reference rank-1 (OpenGait model zoo, Normal/Bag/Clothing/Carrying/
Umbrella/Uniform/Occlusion/Night/Overall): 87.5/84.1/53.4/81.3/86.2/84.8/
88.5/28.8/82.4, rank-5 Overall 92.6 (its checkpoint's name says 30 frames,
while the config trains on 10).

Hardware: The float32 train step of the 8×8 batch needs about 9 GiB on one
device (2.3 GiB per device over 4, 1.2 over 8; XLA's estimate with the CPU
compiler, ``--mode=compile``): one 16 GB GPU. OpenGait trains it with fp16
autocast; pass ``--config.train.compute_dtype=bfloat16`` on accelerators.
OpenGait's recipe uses 4 GPUs (its test batch, one sequence per GPU).
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='deepgaitv2', dataset='sustech1k',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(20_000, 30_000, 40_000), num_steps=50_000,
      pk=(8, 8), sampler='fixed_ordered', batch_shuffle=True,
      num_frames=10, frames_skip=4,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      augment=common.WILD_AUGMENT,
      eval_batch_size=4, frame_limit=720)
