"""Numeric parity with PyTorch mirrors of the OpenGait models, and conversion.

The mirrors (tests/torch_mirrors.py) are written from the OpenGait layer
specification; their state dicts are checked against the key/shape lists of
the specification, then converted with `load_opengait_checkpoint` and run on
the same input as the Flax models.
"""

import collections

import jax
import numpy as np
import pytest

torch = pytest.importorskip('torch')

# pylint: disable=g-import-not-at-top,wrong-import-position
import torch_mirrors
from gait_jax import models
from gait_jax import torch_compat

TOL = 1e-4


# ----------------------- state-dict keys from the spec ----------------------


def _bn(prefix, c):
  keys = {f'{prefix}.{k}': (c,) for k in
          ('weight', 'bias', 'running_mean', 'running_var')}
  keys[f'{prefix}.num_batches_tracked'] = ()
  return keys


def _plain(channels_by_index, kernels):
  keys, cin = {}, 1
  for (idx, cout), k in zip(channels_by_index, kernels):
    keys[f'Backbone.forward_block.feature.{idx}.conv.weight'] = (cout, cin, k,
                                                                 k)
    cin = cout
  return keys


def spec_gaitset(c=(32, 64, 128), hidden=256):
  keys = {}
  for block, cin, cout, k in (('set_block1.forward_block', 1, c[0], 5),
                              ('set_block2.forward_block', c[0], c[1], 3),
                              ('set_block3.forward_block', c[1], c[2], 3),
                              ('gl_block2', c[0], c[1], 3),
                              ('gl_block3', c[1], c[2], 3)):
    keys[f'{block}.0.conv.weight'] = (cout, cin, k, k)
    keys[f'{block}.2.conv.weight'] = (cout, cout, 3, 3)
  keys['Head.fc_bin'] = (62, c[2], hidden)
  return keys


def spec_gaitpart(oumvlp=False):
  if oumvlp:
    chans = [(0, 32), (2, 32), (5, 64), (7, 64), (10, 128), (12, 128),
             (14, 256), (16, 256)]
  else:
    chans = [(0, 32), (2, 32), (5, 64), (7, 64), (10, 128), (12, 128)]
  keys = _plain(chans, [5] + [3] * (len(chans) - 1))
  c = chans[-1][1]
  keys['Head.fc_bin'] = (16, c, c)
  for i in range(16):
    pre = 'TFA.pooling_func'
    keys[f'{pre}.conv1d3x1.{i}.0.conv.weight'] = (c // 4, c, 3)
    keys[f'{pre}.conv1d3x1.{i}.2.conv.weight'] = (c, c // 4, 1)
    keys[f'{pre}.conv1d3x3.{i}.0.conv.weight'] = (c // 4, c, 3)
    keys[f'{pre}.conv1d3x3.{i}.2.conv.weight'] = (c, c // 4, 3)
  return keys


def spec_gaitgl(oumvlp=False):
  def gl(prefix, cin, cout):
    return {f'{prefix}.{b}_conv3d.conv3d.weight': (cout, cin, 3, 3, 3)
            for b in ('global', 'local')}
  if oumvlp:
    c, classes = (32, 64, 128, 256), 5153
    keys = {'conv3d.0.conv3d.weight': (32, 1, 3, 3, 3),
            'conv3d.2.conv3d.weight': (32, 32, 3, 3, 3)}
    for name, cin, cout in (('GLConvA0', c[0], c[1]), ('GLConvA1', c[1], c[2]),
                            ('GLConvB2', c[2], c[3])):
      keys.update(gl(f'{name}.0', cin, cout))
      keys.update(gl(f'{name}.1', cout, cout))
  else:
    c, classes = (32, 64, 128), 74
    keys = {'conv3d.0.conv3d.weight': (32, 1, 3, 3, 3)}
    keys.update(gl('GLConvA0', 32, 64))
    keys.update(gl('GLConvA1', 64, 128))
    keys.update(gl('GLConvB2', 128, 128))
  keys['LTA.0.conv3d.weight'] = (32, 32, 3, 1, 1)
  keys['HPP.p'] = (1,)
  keys['Head0.fc_bin'] = (64, c[-1], c[-1])
  keys.update(_bn('Bn', c[-1]))
  keys['Head1.fc_bin'] = (64, c[-1], classes)
  return keys


def spec_baseline():
  keys = _plain([(0, 64), (2, 64), (5, 128), (7, 128), (10, 256), (12, 256)],
                [5, 3, 3, 3, 3, 3])
  keys['FCs.fc_bin'] = (31, 256, 256)
  keys['BNNecks.fc_bin'] = (31, 256, 74)
  keys.update(_bn('BNNecks.bn1d', 7936))
  return keys


def spec_gaitbase():
  pre = 'Backbone.forward_block'
  keys = {f'{pre}.conv1.conv.weight': (64, 1, 3, 3)}
  keys.update(_bn(f'{pre}.bn1', 64))
  cin = 64
  for i, cout in enumerate((64, 128, 256, 512), start=1):
    blk = f'{pre}.layer{i}.0'
    keys[f'{blk}.conv1.weight'] = (cout, cin, 3, 3)
    keys.update(_bn(f'{blk}.bn1', cout))
    keys[f'{blk}.conv2.weight'] = (cout, cout, 3, 3)
    keys.update(_bn(f'{blk}.bn2', cout))
    if i > 1:
      keys[f'{blk}.downsample.0.weight'] = (cout, cin, 1, 1)
      keys.update(_bn(f'{blk}.downsample.1', cout))
    cin = cout
  keys['FCs.fc_bin'] = (16, 512, 256)
  keys['BNNecks.fc_bin'] = (16, 256, 74)
  keys.update(_bn('BNNecks.bn1d', 4096))
  return keys


SPECS = {
    ('gaitset', 'casia_b'): (spec_gaitset(), 11, 2_594_592),
    ('gaitset', 'oumvlp'): (spec_gaitset((64, 128, 256)), 11, 6_313_536),
    ('gaitpart', 'casia_b'): (spec_gaitpart(), 71, 1_204_000),
    ('gaitpart', 'oumvlp'): (spec_gaitpart(True), 73, 4_841_248),
    ('gaitgl', 'casia_b'): (spec_gaitgl(), 16, 3_096_673),
    ('gaitgl', 'oumvlp'): (spec_gaitgl(True), 23, 95_620_449),
    ('baseline', 'casia_b'): (spec_baseline(), 13, 3_779_136),
    ('gaitbase', 'casia_b'): (spec_gaitbase(), 79, 7_305_408),
}


@pytest.mark.parametrize('name, variant', sorted(SPECS))
def test_mirror_state_dict_matches_spec(name, variant):
  keys, count, params = SPECS[(name, variant)]
  assert len(keys) == count
  module = torch_mirrors.build(name, variant)
  got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
  assert got == keys
  assert sum(p.numel() for p in module.parameters()) == params


@pytest.mark.parametrize('name, variant', sorted(SPECS))
def test_converter_key_map_matches_spec(name, variant):
  # The keys and shapes the converter requires of an OpenGait checkpoint.
  got = torch_compat.opengait_state_dict_shapes(name, {'variant': variant})
  assert got == SPECS[(name, variant)][0]


# --------------------------------- parity -----------------------------------


def _randomise(module, seed):
  """Random BN statistics/affine params and GeM power, so parity can fail."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        c = m.num_features
        m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
        m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
        m.weight.copy_(1.0 + 0.3 * torch.randn(c, generator=gen))
        m.bias.copy_(0.2 * torch.randn(c, generator=gen))
        m.num_batches_tracked.fill_(7)
      if isinstance(m, torch_mirrors.GeMHPP):
        m.p.fill_(4.7)
  return module


PARITY_CASES = [
    ('gaitset', 'casia_b', 6),
    ('gaitset', 'oumvlp', 4),
    ('gaitpart', 'casia_b', 7),
    ('gaitgl', 'casia_b', 7),
    ('gaitgl', 'oumvlp', 6),
    ('baseline', 'casia_b', 5),
    ('gaitbase', 'casia_b', 5),
]


@pytest.mark.parametrize('name, variant, frames', PARITY_CASES)
def test_parity_with_pytorch(name, variant, frames):
  torch.manual_seed(0)
  module = _randomise(torch_mirrors.build(name, variant), seed=1)
  config = {'variant': variant, 'num_classes': -1}  # As in configs/.
  for train in (False, True):
    report = torch_compat.parity_report(module, name, config, batch=2,
                                        frames=frames, seed=3, train=train)
    print(torch_compat.format_parity_report(report))
    expected = {'embeddings'}
    if name in ('gaitgl', 'baseline', 'gaitbase'):
      expected.add('logits')
      if train:
        expected.add('batch_stats')
    assert expected <= set(report)
    for key in expected:
      assert report[key]['max_abs'] < TOL, (key, report[key])
      assert report[key]['max_rel'] < TOL, (key, report[key])


def test_parity_detects_a_wrong_bnneck_layout():
  torch.manual_seed(0)
  module = _randomise(torch_mirrors.build('baseline'), seed=2)
  report = torch_compat.parity_report(module, 'baseline',
                                      {'variant': 'casia_b'}, frames=3,
                                      bnneck_layout='part_major')
  assert report['logits']['max_abs'] > 1e-3


# ------------------------------- conversion ---------------------------------


def _tiny_baseline_state():
  torch.manual_seed(0)
  module = torch_mirrors.Baseline(
      ('BC-4', 'BC-4', 'M', 'BC-8', 'BC-8', 'M', 'BC-16', 'BC-16'),
      hidden_dim=16, num_classes=8)
  return _randomise(module, 0).state_dict()


def test_part_major_bnneck_layout():
  state = _tiny_baseline_state()
  config = {'variant': 'tiny'}
  ref = torch_compat.load_opengait_checkpoint(state, 'baseline', config)
  # The pre-2022 layout stores BN entry p * C + c; OpenGait's is c * P + p.
  parts, channels = 31, 16
  old = dict(state)
  for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
    key = f'BNNecks.bn1d.{leaf}'
    old[key] = state[key].reshape(channels, parts).T.reshape(-1).clone()
  got = torch_compat.load_opengait_checkpoint(old, 'baseline', config,
                                              bnneck_layout='part_major')
  jax.tree.map(np.testing.assert_array_equal, got, ref)
  # And the layout is not a no-op.
  wrong = torch_compat.load_opengait_checkpoint(old, 'baseline', config)
  assert not np.array_equal(wrong['params']['BNNecks']['bn1d']['scale'],
                            ref['params']['BNNecks']['bn1d']['scale'])
  with pytest.raises(ValueError, match='part_major'):
    torch_compat.load_opengait_checkpoint(state, 'baseline', config,
                                          bnneck_layout='rows')


def test_converter_lists_every_problem():
  state = dict(_tiny_baseline_state())
  del state['FCs.fc_bin']
  del state['BNNecks.bn1d.running_var']
  state['Backbone.forward_block.feature.99.conv.weight'] = torch.zeros(
      4, 4, 3, 3)
  state['Extra.weight'] = torch.zeros(3)
  state['BNNecks.fc_bin'] = torch.zeros(31, 16, 9)
  state['Backbone.forward_block.feature.2.conv.weight'] = torch.zeros(
      4, 5, 3, 3)
  with pytest.raises(torch_compat.CheckpointMismatchError) as err:
    torch_compat.load_opengait_checkpoint(state, 'baseline',
                                          {'variant': 'tiny'})
  msg = str(err.value)
  for needle in ('2 missing', 'params/FCs/fc_bin',
                 'batch_stats/BNNecks/bn1d/var', '2 unexpected',
                 'feature.99.conv.weight', 'Extra.weight',
                 '2 shape mismatch', 'BNNecks.fc_bin',
                 'feature.2.conv.weight'):
    assert needle in msg, (needle, msg)


def test_converter_rejects_missing_tfa_part():
  torch.manual_seed(0)
  state = torch_mirrors.GaitPart(
      ('BC-4', 'BC-4', 'M', 'FC-8-2', 'FC-8-2', 'M', 'FC-16-3', 'FC-16-3'),
      hidden_dim=16).state_dict()
  config = {'variant': 'tiny'}
  variables = torch_compat.load_opengait_checkpoint(state, 'gaitpart', config)
  kernel = variables['params']['TFA']['conv1d3x3']['2']['kernel']
  assert kernel.shape == (16, 3, 4, 16)
  # Part 5 of the stacked kernel is part 5's Conv1d weight, transposed.
  np.testing.assert_array_equal(
      kernel[5],
      state['TFA.pooling_func.conv1d3x3.5.2.conv.weight'].numpy().transpose(
          2, 1, 0))
  del state['TFA.pooling_func.conv1d3x1.3.0.conv.weight']
  with pytest.raises(torch_compat.CheckpointMismatchError,
                     match=r'TFA/conv1d3x1/0/kernel\[3\]'):
    torch_compat.load_opengait_checkpoint(state, 'gaitpart', config)


def test_loads_opengait_checkpoint_file(tmp_path):
  state = _tiny_baseline_state()
  path = tmp_path / 'Baseline-01000.pt'
  torch.save({'model': state, 'optimizer': {'state': {}},
              'scheduler': {'milestones': collections.Counter([10, 20])},
              'iteration': 1000}, path)
  got = torch_compat.load_opengait_checkpoint(path, 'baseline',
                                              {'variant': 'tiny'})
  ref = torch_compat.load_opengait_checkpoint(state, 'baseline',
                                              {'variant': 'tiny'})
  jax.tree.map(np.testing.assert_array_equal, got, ref)
  assert torch_compat.checkpoint_num_classes(path, 'baseline') == 8
  state['BNNecks.fc_bin'] = state['BNNecks.fc_bin'][..., :5].clone()
  torch.save({'model': state}, path)
  got = torch_compat.load_opengait_checkpoint(
      path, 'baseline', {'variant': 'tiny', 'num_classes': -1})
  assert got['params']['BNNecks']['fc_bin'].shape == (31, 16, 5)
  np.testing.assert_array_equal(
      got['params']['Backbone']['2']['conv']['kernel'],
      state['Backbone.forward_block.feature.2.conv.weight'].numpy().transpose(
          2, 3, 1, 0))


@pytest.mark.parametrize('frames', [1, 2, 4])
def test_gaitgl_short_sequences_match_pytorch(frames):
  # OpenGait repeats sequences shorter than 3 frames (x3 or x2).
  torch.manual_seed(0)
  module = _randomise(torch_mirrors.GaitGL((4, 8, 8), num_classes=8), 4)
  for train in (False, True):
    report = torch_compat.parity_report(module, 'gaitgl', {'variant': 'tiny'},
                                        frames=frames, train=train)
    for key in ('embeddings', 'logits'):
      assert report[key]['max_rel'] < TOL, (key, report[key])


@pytest.mark.parametrize('name', ['gaitset', 'gaitpart', 'baseline',
                                  'gaitbase'])
def test_padded_batch_matches_opengait_packed_sequences(name):
  # OpenGait's test time packs sequences of different lengths along the frame
  # axis and pools each separately (seqL); a padded, masked batch must match.
  torch.manual_seed(0)
  module = _randomise(torch_mirrors.build(name, 'tiny'), 5).eval()
  lengths = [5, 1, 3, 2]
  sils = torch_compat.deterministic_silhouettes(len(lengths), 5, seed=6)
  packed = np.concatenate([sils[i, :n] for i, n in enumerate(lengths)])
  with torch.no_grad():
    ref = module(([torch.from_numpy(packed[None])], None, None, None,
                  [lengths]))['inference_feat']['embeddings'].numpy()
  config = {'variant': 'tiny'}
  variables = torch_compat.load_opengait_checkpoint(module.state_dict(), name,
                                                    config)
  mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
  model = models.get_model(name, **config)
  out = jax.jit(model.apply)(variables, sils, mask)['embeddings']
  got = np.swapaxes(np.asarray(out), 1, 2)
  assert ref.shape == got.shape
  np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max(), rtol=0)
