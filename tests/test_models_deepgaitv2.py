"""DeepGaitV2: sizes, state-dict keys, PyTorch parity, masking, input checks.

The reference is tests/torch_mirrors_deepgaitv2.py, a PyTorch DeepGaitV2
written from OpenGait's deepgaitv2.py; its random weights are converted
with `load_opengait_checkpoint`. Parity and masking run at tiny widths
(channels 4, 8, 8, 16) on 64x44 frames.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

torch = pytest.importorskip('torch')

# pylint: disable=g-import-not-at-top,wrong-import-position
import torch_mirrors_deepgaitv2 as mirrors
from gait_jax import models
from gait_jax import torch_compat

NAME = 'deepgaitv2'
MODES = ('p3d', '2d', '3d')
SHALLOW, DEEP = (1, 1, 1, 1), (1, 4, 4, 1)
TINY_CHANNELS = (4, 8, 8, 16)
TOL = 1e-4

# OpenGait's DeepGaitV2, counted: (layers, mode) -> (classes, total parameters), and
# the state-dict key counts of 1.2.
PARAM_COUNTS = {
    (SHALLOW, 'p3d'): (74, 8_339_392), (SHALLOW, '3d'): (74, 16_595_136),
    (SHALLOW, '2d'): (74, 7_305_408), (DEEP, 'p3d'): (3000, 25_492_160),
    (DEEP, '3d'): (3000, 41_855_680), (DEEP, '2d'): (3000, 23_718_592),
}
KEY_COUNTS = {(SHALLOW, 'p3d'): 97, (DEEP, 'p3d'): 205, (SHALLOW, '3d'): 79,
              (DEEP, '3d'): 151, (SHALLOW, '2d'): 79, (DEEP, '2d'): 151}
VARIANT_COUNTS = {  # p3d unless given; (variant, mode) -> total.
    ('casia_b', 'p3d'): 8_339_392, ('ccpg', 'p3d'): 8_445_888,
    ('sustech1k', 'p3d'): 9_060_288, ('oumvlp', 'p3d'): 29_142_976,
    ('gait3d', 'p3d'): 25_492_160, ('grew', 'p3d'): 95_124_160,
    ('grew', '3d'): 111_487_680,
}


def _flax_param_count(**config):
  model = models.get_model(NAME, **config)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  return sum(x.size for x in jax.tree.leaves(shapes['params']))


def _bn(prefix, c):
  keys = {f'{prefix}.{k}': (c,) for k in
          ('weight', 'bias', 'running_mean', 'running_var')}
  keys[f'{prefix}.num_batches_tracked'] = ()
  return keys


def spec_p3d_casia_b():
  """The P3D [1, 1, 1, 1] state dict as OpenGait's DeepGaitV2 names it."""
  keys = {'layer0.forward_block.0.weight': (64, 1, 3, 3)}
  keys.update(_bn('layer0.forward_block.1', 64))
  for conv in ('conv1', 'conv2'):
    keys[f'layer1.forward_block.0.{conv}.weight'] = (64, 64, 3, 3)
    keys.update(_bn(f'layer1.forward_block.0.bn{conv[-1]}', 64))
  for layer, ci, co in ((2, 64, 128), (3, 128, 256), (4, 256, 512)):
    pre = f'layer{layer}.0'
    keys[f'{pre}.conv1.forward_block.0.weight'] = (co, ci, 3, 3)
    keys.update(_bn(f'{pre}.conv1.forward_block.1', co))
    keys[f'{pre}.conv2.forward_block.0.weight'] = (co, co, 3, 3)
    keys.update(_bn(f'{pre}.conv2.forward_block.1', co))
    keys[f'{pre}.shortcut3d.weight'] = (co, co, 3, 1, 1)
    keys.update(_bn(f'{pre}.sbn', co))
    keys[f'{pre}.downsample.0.weight'] = (co, ci, 1, 1, 1)
    keys.update(_bn(f'{pre}.downsample.1', co))
  keys['FCs.fc_bin'] = (16, 512, 256)
  keys['BNNecks.fc_bin'] = (16, 256, 74)
  keys.update(_bn('BNNecks.bn1d', 4096))
  return keys


@pytest.mark.parametrize('layers, mode', sorted(PARAM_COUNTS))
def test_full_size_counts_and_keys(layers, mode):
  classes, total = PARAM_COUNTS[(layers, mode)]
  config = dict(variant='casia_b', mode=mode, layers=layers,
                num_classes=classes)
  assert _flax_param_count(**config) == total
  module = mirrors.DeepGaitV2(mode, layers, class_num=classes)
  assert sum(p.numel() for p in module.parameters()) == total
  state = {k: tuple(v.shape) for k, v in module.state_dict().items()}
  assert len(state) == KEY_COUNTS[(layers, mode)]
  # The converter asks for exactly the mirror's keys and shapes.
  assert torch_compat.opengait_state_dict_shapes(NAME, config) == state
  if (layers, mode) == (SHALLOW, 'p3d'):
    assert state == spec_p3d_casia_b()


def test_variant_param_counts():
  for (variant, mode), total in VARIANT_COUNTS.items():
    assert _flax_param_count(variant=variant, mode=mode) == total, variant
  assert set(models.variant_names(NAME)) == {
      'casia_b', 'oumvlp', 'gait3d', 'grew', 'ccpg', 'sustech1k', 'tiny'}


def _tiny_mirror(mode, layers, seed=1, **kwargs):
  torch.manual_seed(0)
  return mirrors.randomise(
      mirrors.DeepGaitV2(mode, layers, TINY_CHANNELS, 8, **kwargs), seed)


def _tiny_config(mode, layers, **kwargs):
  return dict(variant='tiny', mode=mode, layers=layers, num_classes=-1,
              **kwargs)


@pytest.mark.parametrize('layers', [SHALLOW, (1, 2, 2, 1)])
@pytest.mark.parametrize('mode', MODES)
def test_parity_with_pytorch(mode, layers):
  module = _tiny_mirror(mode, layers)
  config = _tiny_config(mode, layers)
  assert torch_compat.checkpoint_num_classes(module.state_dict(), NAME) == 8
  # Train batch 4: the BNNeck's normalisation over a batch of two amplifies
  # the float32 rounding of the embeddings (rel 1e-6) past 1e-4 in the
  # logits. (Eval runs PyTorch once per sequence: batch 2.)
  for train, batch in ((False, 2), (True, 4)):
    report = torch_compat.parity_report(module, NAME, config, batch=batch,
                                        frames=6, seed=3, train=train)
    print(torch_compat.format_parity_report(report))
    expected = {'embeddings', 'logits'} | ({'batch_stats'} if train else set())
    assert expected <= set(report)
    for key in expected:
      assert report[key]['max_abs'] < TOL, (key, report[key])


def test_use_emb2_embeds_with_the_bnneck_features():
  module = _tiny_mirror('p3d', SHALLOW, use_emb2=True)
  report = torch_compat.parity_report(
      module, NAME, _tiny_config('p3d', SHALLOW, use_emb2=True), batch=2,
      frames=5, seed=4)
  assert report['embeddings']['max_abs'] < 1e-5, report


def _torch_embed(module, sils):
  with torch.no_grad():
    out = module(([torch.from_numpy(np.ascontiguousarray(sils))],
                  torch.zeros(sils.shape[0], dtype=torch.long), None, None,
                  None))
  return (out['inference_feat']['embeddings'].numpy(),
          out['training_feat']['softmax']['logits'].numpy())


def _flax(mode, module):
  config = _tiny_config(mode, SHALLOW)
  variables = torch_compat.load_opengait_checkpoint(module.state_dict(), NAME,
                                                    config)
  return models.get_model(NAME, **{**config, 'num_classes': 8}), variables


def _close(got, want, what):
  """max |got - want| <= 1e-5 * max |want| (got from a `[n, p, c]` output)."""
  np.testing.assert_allclose(got, want, rtol=0,
                             atol=1e-5 * np.abs(want).max(), err_msg=what)


@pytest.mark.parametrize('mode', MODES)
def test_padded_batch_equals_each_sequence_alone(mode):
  module = _tiny_mirror(mode, SHALLOW, seed=5).eval()
  model, variables = _flax(mode, module)
  lengths = [6, 4, 1, 0]  # 0: a batch-padding example.
  sils = torch_compat.deterministic_silhouettes(len(lengths), 6, seed=6)
  mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
  padded = np.where(mask[..., None, None], sils, 3.0)  # Garbage padding.
  out = jax.jit(model.apply)(variables, padded, mask)
  for value in out.values():
    assert np.all(np.isfinite(value))
  alone = jax.jit(model.apply)(variables, sils[1:2, :4])  # Flax alone.
  for key in ('embeddings', 'logits'):
    _close(out[key][1], alone[key][0], f'{key}, flax alone')
  for i, n in enumerate(lengths[:-1]):
    emb, logits = _torch_embed(module, sils[i:i + 1, :n])  # PyTorch alone.
    _close(np.swapaxes(out['embeddings'][i], 0, 1), emb[0],
           f'embeddings, length {n}')
    _close(out['logits'][i], logits[0], f'logits, length {n}')


@pytest.mark.parametrize('mode', MODES)
def test_train_statistics_ignore_padded_frames(mode):
  module = _tiny_mirror(mode, SHALLOW, seed=7).train()
  model, variables = _flax(mode, module)
  sils = torch_compat.deterministic_silhouettes(4, 5, seed=8)
  emb, logits = _torch_embed(module, sils)  # Updates the running stats.
  ref_stats = torch_compat.load_opengait_checkpoint(
      module.state_dict(), NAME, _tiny_config(mode, SHALLOW))['batch_stats']
  # The same four sequences padded to 7 frames with garbage. (Training
  # batches have no empty examples; the BNNeck's statistics would count one.)
  padded = np.full((4, 7, 64, 44), 3.0, np.float32)
  padded[:, :5] = sils
  mask = np.ones((4, 7), bool) & (np.arange(7) < 5)
  run = jax.jit(functools.partial(model.apply, train=True,
                                  mutable=['batch_stats']))
  out, state = run(variables, padded, mask)
  _close(np.swapaxes(out['embeddings'], 1, 2), emb, 'embeddings')
  np.testing.assert_allclose(out['logits'], logits, rtol=0, atol=TOL)
  ours = traverse_util.flatten_dict(dict(state['batch_stats']))
  for path, want in traverse_util.flatten_dict(ref_stats).items():
    np.testing.assert_allclose(ours[path], want, rtol=0, atol=1e-5,
                               err_msg='/'.join(path))
  # Unequal lengths: what the padded frames hold changes nothing.
  mask = np.arange(7)[None, :] < np.array([7, 5, 3, 1])[:, None]
  a, state_a = run(variables, padded, mask)
  b, state_b = run(variables, np.where(mask[..., None, None], padded, -2.0),
                   mask)
  jax.tree.map(np.testing.assert_array_equal, (a, state_a), (b, state_b))


def test_width_and_mode_are_checked():
  model = models.get_model(NAME, variant='tiny')
  init = functools.partial(jax.eval_shape, model.init, jax.random.key(0))
  for width in (44, 88):
    init(jnp.zeros((1, 2, 64 if width == 44 else 128, width)))
  with pytest.raises(ValueError, match='width 44 or 88'):
    init(jnp.zeros((1, 2, 64, 64)))
  with pytest.raises(ValueError, match="'4d'"):
    jax.eval_shape(models.get_model(NAME, variant='tiny', mode='4d').init,
                   jax.random.key(0), jnp.zeros((1, 2, 64, 44)))


def test_no_cpu_forms_when_lowered_for_gpu_or_tpu():
  """P3D with ops='auto': a CUDA/TPU program has none of the CPU-tuned forms
  (markers as in tests/test_ops.py), the CPU program has them."""
  model = models.get_model(NAME, variant='tiny', num_classes=5)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  sils = jax.ShapeDtypeStruct((2, 4, 64, 44), jnp.float32)
  mask = jax.ShapeDtypeStruct((2, 4), jnp.bool_)

  def grads(variables, sils, mask):
    def loss(p):
      out, _ = model.apply({**variables, 'params': p}, sils, mask,
                           train=True, mutable=['batch_stats'])
      return sum(jnp.sum(v) for v in out.values())
    return jax.grad(loss)(variables['params'])

  def text(platforms):
    return jax.export.export(jax.jit(grads), platforms=platforms)(
        shapes, sils, mask).mlir_module()

  gpu, cpu = text(('cuda', 'tpu')), text(('cpu',))
  conv3d = re.compile(r'dim_numbers = \[b, 0, 1, 2, f\]')
  assert 'optimization_barrier' not in gpu
  assert 'optimization_barrier' in cpu
  assert conv3d.search(gpu)
  assert not conv3d.search(cpu)


def test_converted_variables_do_not_alias_the_checkpoint():
  module = _tiny_mirror('p3d', SHALLOW)
  variables = torch_compat.load_opengait_checkpoint(
      module.state_dict(), NAME, {'variant': 'tiny'})
  mean = variables['batch_stats']['layer0']['1']['mean']
  before = np.array(mean)
  with torch.no_grad():
    module.layer0.forward_block[1].running_mean.add_(1.0)
  np.testing.assert_array_equal(mean, before)
