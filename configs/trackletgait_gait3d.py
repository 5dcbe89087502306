r"""TrackletGait on Gait3D: zhangsx26/TrackletGait's
``trackletgait_gait3d.yaml`` (arXiv 2508.02143).

  python -m data_prep.convert --dataset=gait3d --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/trackletgait_gait3d.py \
      --workdir=workdirs/trackletgait_gait3d
  python launch.py --config=configs/trackletgait_gait3d.py:gil \
      --workdir=workdirs/trackletgait_gait3d_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``. Every preset's triplet term uses the hardness
exclusion.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 40k, 80k and
100k, 120k steps; P×K 32×4, shuffled; Random Tracklet Sampling, 32 frames per
sequence (``tracklet``: tracklets of 8, 16 or 32 consecutive frames, drawn
with probabilities 0.2, 0.3, 0.5); DeepGaitV2's training augmentation, per
sequence: random perspective (p 0.2, before the cut), random horizontal flip
(p 0.2), random rotation (p 0.2, ±10°); see
``gait_jax/data/augment_geometric.py``; Hardness-Exclusion triplet 1.0
(margin 0.2, triplets whose positive distance is at least μ + 2/3·(M − μ)
dropped) + CE 1.0 (scale 16, label smoothing 0.1); test on all frames (at
most 720), batch 2. The full backbone (``TrackletGait.py``): 10,314,688
parameters (the paper's "10.3M"), 24,708,032 in all with the 3000-class
BNNeck.

Reference (TrackletGait README): rank-1 77.8 (rank-5 89.0, rank-10 92.1),
mAP 70.2, mINP 51.64 on the Gait3D protocol (``gait3d``: rank-1/5/10, mAP,
mINP).

Hardware: not measured here (``--mode=compile`` prints XLA's estimate for a
mesh). The backbone keeps 64×44 through layer1 and 32×22 through layers 2-5
for all 32 frames of the 128 sequences, so the float32 step needs several
accelerators; TrackletGait trains it on 2 GPUs with fp16 autocast (its test
batch, one sequence per GPU): pass ``--config.train.compute_dtype=bfloat16``
on accelerators.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return recipe(arg, 'gait3d')


def recipe(arg: str, dataset: str):
  """TrackletGait's released recipe on ``dataset`` (also GREW's config)."""
  return common.build(
      arg, model='trackletgait', dataset=dataset,
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(40_000, 80_000, 100_000), num_steps=120_000,
      pk=(32, 4), sampler='tracklet', batch_shuffle=True, num_frames=32,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      augment=common.WILD_AUGMENT, preset_loss=common.HARD_EXCLUSION,
      eval_batch_size=2, frame_limit=720)
