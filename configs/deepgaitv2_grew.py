r"""DeepGaitV2 (P3D) on GREW: OpenGait's
``configs/deepgaitv2/DeepGaitV2_grew.yaml``.

  python -m data_prep.convert --dataset=grew --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/deepgaitv2_grew.py \
      --workdir=workdirs/deepgaitv2_grew
  python launch.py --config=configs/deepgaitv2_grew.py:gil \
      --workdir=workdirs/deepgaitv2_grew_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 80k, 120k and
150k, 180k steps; P×K 32×4, shuffled; 30 ordered frames of a random 34-frame
window (``fixed_ordered``, skip 4); OpenGait's training augmentation, per
sequence: random perspective (p 0.2, before the cut), random horizontal flip
(p 0.2), random rotation (p 0.2, ±10°); see
``gait_jax/data/augment_geometric.py``; triplet 1.0 (margin 0.2) + CE 1.0
(scale 16, label smoothing 0.1); test batch 4, first 720 frames. Backbone
layers [1, 4, 4, 1], channels 64/128/256/512.

Reference (OpenGait model zoo): rank-1 79.4 on GREW's test server, for
the 3-D variant with no released config. The server no longer takes
submissions; ``--mode=eval`` prints the local proxy (gallery 01 against
probe 02) and writes the submission file (probes 03) into the workdir.

Hardware: The float32 train step of the 32×4 batch needs about 100 GiB on one
device (26.2 GiB per device over 4, 14.2 over 8; XLA's estimate with the CPU
compiler, ``--mode=compile``): four 40 GB GPUs (26.2 GiB each), or eight 16 GB
GPUs (14.2 GiB each). OpenGait trains it with fp16 autocast; pass
``--config.train.compute_dtype=bfloat16`` on accelerators. OpenGait's recipe
uses 4 GPUs (its test batch, one sequence per GPU).
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='deepgaitv2', dataset='grew',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(80_000, 120_000, 150_000), num_steps=180_000,
      pk=(32, 4), sampler='fixed_ordered', batch_shuffle=True,
      num_frames=30, frames_skip=4,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      augment=common.WILD_AUGMENT,
      eval_batch_size=4, frame_limit=720)
