"""SwinGait: sizes, state-dict keys, PyTorch parity, masking, stochastic depth.

The reference is tests/torch_mirrors_swingait.py, a PyTorch SwinGait written
from OpenGait's swingait.py with OpenGait's key names; its random
weights are converted with `load_opengait_checkpoint`. Parity runs the tiny
variant on 64x64 frames; frame counts 2 (windows shrink to the input, no
temporal shift), 5 and 7 (zero-padded to window multiples).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')

# pylint: disable=g-import-not-at-top,wrong-import-position
import torch_mirrors_swingait as mirrors
from gait_jax import models
from gait_jax import torch_compat
from gait_jax.models import layers
from gait_jax.models import swin_windows
from gait_jax.models import swingait

NAME = 'swingait'
TOL = 1e-4
FRAME = (64, 64)
# OpenGait's SwinGait (Gait3D, 3000 classes).
TOTAL, BACKBONE = 25_539_136, 11_145_792
TINY = dict(layers=(1, 1, 2, 2), channels=(4, 8), class_num=8, embed_dim=8,
            heads=(2, 2), hidden=8)


def _shapes(**config):
  model = models.get_model(NAME, **config)
  return jax.eval_shape(model.init, jax.random.key(0),
                        jnp.zeros((1, 3) + FRAME))['params']


def test_gait3d_param_counts_and_keys():
  params = _shapes(variant='gait3d')
  count = lambda t: sum(x.size for x in jax.tree.leaves(t))
  assert count(params) == TOTAL
  assert count({k: v for k, v in params.items()
                if k not in ('FCs', 'BNNecks')}) == BACKBONE
  module = mirrors.SwinGait()
  assert sum(p.numel() for p in module.parameters()) == TOTAL
  state = {k: tuple(v.shape) for k, v in module.state_dict().items()}
  # The converter asks for exactly the mirror's (OpenGait's) keys.
  assert torch_compat.opengait_state_dict_shapes(
      NAME, {'variant': 'gait3d'}) == state
  for key, shape in [
      ('transformer.patch_embed.proj.weight', (256, 128, 1, 2, 2)),
      ('transformer.layers.0.blocks.3.attn.relative_position_bias_table',
       (5 * 5 * 9, 16)),
      ('transformer.layers.0.blocks.0.attn.relative_position_index',
       (45, 45)),
      ('transformer.layers.0.downsample.1.weight', (512, 256)),
      ('transformer.layers.1.blocks.1.mlp.fc1.weight', (2048, 512)),
      ('transformer.norm.weight', (512,)),
      ('layer2.3.conv2.forward_block.0.weight', (128, 128, 3, 3)),
      ('FCs.fc_bin', (16, 512, 256)), ('BNNecks.fc_bin', (16, 256, 3000))]:
    assert state[key] == shape, key


def _tiny_mirror(seed=1, drop_path_rate=0.0):
  torch.manual_seed(0)
  return mirrors.randomise(
      mirrors.SwinGait(drop_path_rate=drop_path_rate, **TINY), seed)


_CONFIG = dict(variant='tiny', num_classes=-1, drop_path_rate=0.0)


@pytest.mark.parametrize('frames', [2, 5, 7])
def test_parity_with_pytorch_eval(frames):
  report = torch_compat.parity_report(_tiny_mirror(), NAME, _CONFIG, batch=2,
                                      frames=frames, seed=3,
                                      frame_shape=FRAME)
  print(torch_compat.format_parity_report(report))
  for key in ('embeddings', 'logits'):
    assert report[key]['max_abs'] < TOL, (key, report[key])


def test_parity_with_pytorch_train():
  # Stochastic depth off on both sides; BatchNorm in training mode.
  report = torch_compat.parity_report(_tiny_mirror(), NAME, _CONFIG, batch=4,
                                      frames=5, seed=4, train=True,
                                      frame_shape=FRAME)
  print(torch_compat.format_parity_report(report))
  for key in ('embeddings', 'logits', 'batch_stats'):
    assert report[key]['max_abs'] < TOL, (key, report[key])


def _sils(seed, n, s):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.random((n, s) + FRAME) > 0.6, jnp.float32)


def test_padded_batch_equals_single_sequences():
  """Windows span frames; the masks make each sequence see only itself."""
  model = models.get_model(NAME, variant='tiny')
  lengths = [7, 4, 3, 1, 0]  # <= 3: no temporal shift alone; 0: padding.
  sils = _sils(2, len(lengths), 7)
  variables = jax.jit(model.init)(jax.random.key(0), sils[:1])
  mask = jnp.arange(7)[None, :] < jnp.array(lengths)[:, None]
  padded = jnp.where(mask[..., None, None], sils, 3.0)
  batched = jax.jit(model.apply)(variables, padded, mask)
  for value in batched.values():
    assert np.all(np.isfinite(value))
  for i, length in enumerate(lengths[:-1]):
    alone = jax.jit(model.apply)(variables, sils[i:i + 1, :length])
    for key, value in alone.items():
      np.testing.assert_allclose(batched[key][i], value[0], atol=1e-5,
                                 rtol=0, err_msg=f'{key}, length {length}')


class _DropPath(nn.Module):
  rate: float

  @nn.compact
  def __call__(self, x, train):
    return layers.drop_path(self, x, self.rate, train)


def test_stochastic_depth_needs_train_and_a_dropout_rng():
  x = jnp.ones((64, 3, 2))
  layer = _DropPath(0.25)
  rngs = {'dropout': jax.random.key(0)}
  np.testing.assert_array_equal(layer.apply({}, x, False, rngs=rngs), x)
  np.testing.assert_array_equal(layer.apply({}, x, True), x)
  y = np.asarray(layer.apply({}, x, True, rngs=rngs))
  # Whole samples are dropped; kept ones are scaled by 1 / (1 - rate).
  kept = np.all(y == 1 / 0.75, axis=(1, 2))
  assert np.all(kept | np.all(y == 0, axis=(1, 2)))
  assert 0 < np.sum(~kept) < 32
  # In the model: two dropout keys give two different training outputs.
  model = models.get_model(NAME, variant='tiny', drop_path_rate=0.5)
  sils = _sils(5, 2, 4)[:, :, ::2, ::2]  # Any frame size runs.
  variables = jax.jit(model.init)(jax.random.key(0), sils[:1])
  run = jax.jit(lambda key: model.apply(
      variables, sils, train=True, rngs={'dropout': key},
      mutable=['batch_stats'])[0]['embeddings'])
  assert not np.allclose(run(jax.random.key(1)), run(jax.random.key(2)))


def test_region_mask_and_resize_match_opengait():
  # compute_mask of a 6x3x5 grid, window (3, 3, 5), shift (1, 1, 2).
  ours = swin_windows.region_mask((6, 3, 5), (3, 3, 5), (1, 1, 2))
  theirs = mirrors.shift_mask(6, 3, 5, (3, 3, 5), (1, 1, 2)).numpy() == 0
  np.testing.assert_array_equal(ours, theirs)
  x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
  ref = torch.nn.UpsamplingBilinear2d(size=(30, 20))(
      torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(swingait.resize_bilinear(jnp.asarray(x),
                                                      (30, 20)), ref,
                             atol=1e-5)
