"""GaitSet: frame-wise CNN, set max-pooling and a multilayer global pipeline.

Chao et al., "GaitSet: Regarding Gait as a Set for Cross-View Gait
Recognition", AAAI 2019. Submodule names follow OpenGait's state-dict keys.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import layers
from gait_jax.models import ops as ops_lib
from gait_jax.models import remat as remat_lib

Array = jax.Array

VARIANTS = {
    'casia_b': dict(in_channels=(1, 32, 64, 128), hidden_dim=256),
    'oumvlp': dict(in_channels=(1, 64, 128, 256), hidden_dim=256),
    'tiny': dict(in_channels=(1, 4, 8, 16), hidden_dim=16),
}


class SetBlock(nn.Module):
  """Two convolutions with LeakyReLU and an optional 2x2 max-pool, per frame.

  Attributes:
    features: output channels of both convolutions.
    first_kernel: kernel size of the first convolution (5 in the first block).
    pool: end with a 2x2, stride-2 max-pool.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
  """
  features: int
  first_kernel: int = 3
  pool: bool = True
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[N, h, w, c]` to `[N, h', w', features]`."""
    k = self.first_kernel
    choice = dict(ops=self.ops, conv_kernel_grad=self.conv_kernel_grad)
    # Indices 0 and 2 mirror OpenGait's Sequential (1, 3 are the LeakyReLUs).
    x = layers.BasicConv(self.features, (k, k), padding=k // 2,
                         dtype=self.dtype, name='0', **choice)(x)
    x = layers.leaky_relu(x)
    x = layers.BasicConv(self.features, (3, 3), padding=1, dtype=self.dtype,
                         name='2', **choice)(x)
    x = layers.leaky_relu(x)
    if self.pool:
      x = ops_lib.max_pool_2x2(x, ops=self.ops)
    return x


class GaitSet(nn.Module):
  """GaitSet.

  Attributes:
    in_channels: `(1, c1, c2, c3)` channels of the three set blocks.
    hidden_dim: output channels of the per-part head.
    bin_num: horizontal pyramid bins (parts = 2 * sum(bin_num)).
    num_classes: unused (GaitSet has no classifier); accepted so every model
      takes the same configuration keys.
    axis_name: unused (no BatchNorm); accepted for the common contract.
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the set blocks
      in training (see `gait_jax.models.remat`).
  """
  in_channels: Sequence[int] = (1, 32, 64, 128)
  hidden_dim: int = 256
  bin_num: Sequence[int] = (16, 8, 4, 2, 1)
  num_classes: Optional[int] = None
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds silhouette sequences.

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1].
      mask: bool `[n, s]`, True for real frames, or None (all real).
      train: unused (the model has no train-time behaviour).

    Returns:
      `{'embeddings': [n, parts, hidden_dim]}` in float32.
    """
    del train
    _, c1, c2, c3 = self.in_channels
    dt = self.dtype
    x = sils.astype(dt)[..., None]  # [n, s, h, w, 1]

    choice = dict(ops=self.ops, conv_kernel_grad=self.conv_kernel_grad)
    block = remat_lib.wrap(SetBlock, self.remat)
    set_block1 = block(c1, first_kernel=5, dtype=dt, name='set_block1',
                       **choice)
    set_block2 = block(c2, dtype=dt, name='set_block2', **choice)
    set_block3 = block(c3, pool=False, dtype=dt, name='set_block3', **choice)
    gl_block2 = block(c2, dtype=dt, name='gl_block2', **choice)
    gl_block3 = block(c3, pool=False, dtype=dt, name='gl_block3', **choice)

    outs = layers.frame_wise(set_block1, x)  # [n, s, h/2, w/2, c1]
    gl = gl_block2(layers.masked_max(outs, mask))  # [n, h/4, w/4, c2]
    outs = layers.frame_wise(set_block2, outs)  # [n, s, h/4, w/4, c2]
    gl = gl + layers.masked_max(outs, mask)
    gl = gl_block3(gl)  # [n, h/4, w/4, c3]
    outs = layers.frame_wise(set_block3, outs)  # [n, s, h/4, w/4, c3]
    outs = layers.masked_max(outs, mask)  # [n, h/4, w/4, c3]
    gl = gl + outs

    feat = jnp.concatenate([layers.horizontal_pyramid(outs, self.bin_num),
                            layers.horizontal_pyramid(gl, self.bin_num)],
                           axis=1)  # [n, 2 * sum(bins), c3]
    embs = layers.SeparateFCs(feat.shape[1], self.hidden_dim, dtype=dt,
                              name='Head')(feat)  # [n, p, hidden_dim]
    return {'embeddings': embs.astype(jnp.float32)}
