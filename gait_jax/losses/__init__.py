"""Losses of gait_jax: OpenGait's triplet and CE losses and the GIL terms.

All functions take embeddings laid out [n, parts, channels] (logits
[n, classes, parts]), compute in float32, return ``(loss, aux)`` with the
loss averaged over parts, and accept ``axis_name`` to run inside
``jax.shard_map`` on a shard of the batch with the value and gradient of the
whole batch. `compute_loss` composes the terms configured by
`get_loss_config`.
"""

from gait_jax.losses.gil import compute_loss
from gait_jax.losses.gil import get_loss_config
from gait_jax.losses.gil import PRESETS
from gait_jax.losses.gil import validate_loss_config
from gait_jax.losses.softmax import cross_entropy_loss
from gait_jax.losses.softmax import pair_softmax_loss
from gait_jax.losses.triplet import pair_weights
from gait_jax.losses.triplet import triplet_loss
from gait_jax.losses.uniformity import uniformity_loss

__all__ = [
    'PRESETS',
    'compute_loss',
    'cross_entropy_loss',
    'get_loss_config',
    'pair_softmax_loss',
    'pair_weights',
    'triplet_loss',
    'uniformity_loss',
    'validate_loss_config',
]
