r"""GaitGL on CASIA-B with the GIL authors' recipe (their GaitGL config).

The recipe of the authors' code release for "Generalized Inter-class Loss for
Gait Recognition" (ACM MM 2022), a fork of OpenGait; the loss defaults to
``gil_rc``, the pair-weighted triplet loss of that code.

  python launch.py --config=configs/gaitgl_casia_b_gil_authors.py \
      --workdir=workdirs/gaitgl_casia_b_gil_authors
  python launch.py --config=configs/gaitgl_casia_b_gil_authors.py:gil \
      --workdir=workdirs/gaitgl_casia_b_gil_authors_gil

Argument: a loss preset (gil_rc (default), triplet, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4; timm-style cosine
schedule over 80k steps with a 2000-step linear warm-up from 1e-6 and a floor
of 1e-4; P×K 8×8, shuffled; 30 consecutive frames; triplet 1.0 only (their
config sets the pair-softmax and CE weights to 0); test batch 4.

Reference rank-1 (the authors' CASIA-B table, identical views excluded,
74 training subjects): GaitGL baseline NM 97.4, BG 94.5, CL 83.6; with their
loss, margin form NM 96.4, BG 95.0, CL 89.8, and softmax form NM 97.6,
BG 95.5, CL 87.2. Which form the released config trains is our reading: its
loss is the weighted triplet (margin form).

Hardware: as ``configs/gaitgl_casia_b.py`` (same model and batch): about
7 GiB for the float32 train step, so one 16 GB GPU.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitgl', dataset='casia_b', default_preset='gil_rc',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.cosine(warmup_steps=2_000, warmup_init_lr=1e-6,
                             min_lr=1e-4),
      num_steps=80_000, pk=(8, 8), sampler='fixed_ordered',
      batch_shuffle=True, eval_batch_size=4)
