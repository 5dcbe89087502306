r"""TrackletGait on GREW: the Gait3D recipe of zhangsx26/TrackletGait
(``trackletgait_gait3d.yaml``) with GREW's 20,000
training identities.

  python -m data_prep.convert --dataset=grew --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/trackletgait_grew.py \
      --workdir=workdirs/trackletgait_grew
  python launch.py --config=configs/trackletgait_grew.py:gil \
      --workdir=workdirs/trackletgait_grew_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``. Every preset's triplet term uses the hardness
exclusion.

Recipe: TrackletGait released only its Gait3D config; this project's choice
is to train GREW with the same recipe (iterations and milestones included):
SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 40k, 80k and 100k,
120k steps; P×K 32×4, shuffled; Random Tracklet Sampling, 32 frames per
sequence (``tracklet``: tracklets of 8, 16 or 32 consecutive frames, drawn
with probabilities 0.2, 0.3, 0.5); DeepGaitV2's training augmentation, per
sequence: random perspective (p 0.2, before the cut), random horizontal flip
(p 0.2), random rotation (p 0.2, ±10°); see
``gait_jax/data/augment_geometric.py``; Hardness-Exclusion triplet 1.0
(margin 0.2, triplets whose positive distance is at least μ + 2/3·(M − μ)
dropped) + CE 1.0 (scale 16, label smoothing 0.1); test on all frames (at
most 720), batch 2. The full backbone: 10,314,688 parameters (the paper's
"10.3M").

Reference (TrackletGait README): rank-1 80.4 (80.42; rank-5/10/20 89.75,
92.31, 94.06) on GREW's test server (Dec 2024). The server no longer takes
submissions; ``--mode=eval`` prints the local proxy (gallery 01 against
probe 02) and writes the submission file (probes 03) into the workdir.

Hardware: not measured here (``--mode=compile`` prints XLA's estimate for a
mesh); as ``configs/trackletgait_gait3d.py``, plus the 20,000-class BNNeck
(94,340,032 parameters in all). Pass
``--config.train.compute_dtype=bfloat16`` on accelerators.
"""

from configs import trackletgait_gait3d


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return trackletgait_gait3d.recipe(arg, 'grew')
