"""OpenGait checkpoint conversion on synthesised state dicts (no PyTorch).

The state dicts are built from `opengait_state_dict_shapes`, whose keys and
shapes tests/test_models_parity.py checks against the OpenGait specification.
"""

import importlib.util
import os

import jax
import numpy as np
import pytest

from gait_jax import models
from gait_jax import torch_compat

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'configs')
CLASSES = 73  # Neither variant's default, so it must come from the checkpoint.


def _model_sections():
  """`{(name, variant): model section}` of every distinct configs/*.py."""
  sections = {}
  for file in sorted(os.listdir(CONFIG_DIR)):
    if not file.endswith('.py') or file in ('__init__.py', 'common.py'):
      continue
    spec = importlib.util.spec_from_file_location(f'configs_{file[:-3]}',
                                                  os.path.join(CONFIG_DIR,
                                                               file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    section = module.get_config('').model.to_dict()
    sections[(section['name'], section['variant'])] = section
  return sections


SECTIONS = _model_sections()


def _state_dict(name, config, seed=0):
  """Random float32 entries with the keys and shapes of an OpenGait model."""
  rng = np.random.default_rng(seed)
  return {k: rng.standard_normal(s, np.float32) if s else np.int64(3)
          for k, s in torch_compat.opengait_state_dict_shapes(
              name, config).items()}


def test_config_sections_cover_every_model_and_dataset():
  assert {name for name, _ in SECTIONS} == set(models.model_names())
  assert all(s['num_classes'] == -1 for s in SECTIONS.values())


@pytest.mark.parametrize('name, variant', sorted(SECTIONS))
def test_converts_a_config_model_section(name, variant):
  section = dict(SECTIONS[(name, variant)])
  del section['name']
  has_classifier = name in torch_compat.CLASSIFIER_KEYS
  classes = CLASSES if has_classifier else None
  state = _state_dict(name, {**section, 'num_classes': classes})
  assert torch_compat.checkpoint_num_classes(state, name) == classes
  resolved = torch_compat.resolve_model_config(state, name, section)
  assert resolved.get('num_classes', -1) == (classes or -1)
  variables = torch_compat.load_opengait_checkpoint(state, name, section)
  want = torch_compat.expected_variables(name, resolved)
  got = {k: (v.shape, v.dtype) for k, v in
         jax.tree_util.tree_flatten_with_path(variables)[0]}
  assert got == {tuple(jax.tree_util.DictKey(p) for p in k):
                 (v.shape, np.dtype('float32')) for k, v in want.items()}
  # Every number of the state dict arrives (stacked, transposed, reordered).
  def energy(arrays):
    return sum(float(np.sum(np.square(np.asarray(a, np.float64))))
               for a in arrays)
  np.testing.assert_allclose(
      energy(jax.tree.leaves(variables)),
      energy(v for k, v in state.items()
             # Dropped: counters and Swin's constant position index.
             if not k.endswith(('num_batches_tracked',
                                'relative_position_index'))), rtol=1e-6)


def test_classifier_keys_are_the_weights_sized_by_num_classes():
  for name in models.model_names():
    a, b = (torch_compat.opengait_state_dict_shapes(
        name, {'variant': 'tiny', 'num_classes': k}) for k in (8, 9))
    changed = sorted(k for k in a if a[k] != b[k])
    key = torch_compat.CLASSIFIER_KEYS.get(name)
    assert changed == ([key] if key else []), name
    if key:
      assert a[key][-1] == 8


def test_checkpoint_num_classes_unwraps_and_validates():
  state = _state_dict('baseline', {'variant': 'tiny', 'num_classes': 5})
  wrapped = {'model': {f'module.{k}': v for k, v in state.items()},
             'iteration': 10}
  assert torch_compat.checkpoint_num_classes(wrapped, 'baseline') == 5
  assert torch_compat.checkpoint_num_classes({}, 'gaitgl') is None
  assert torch_compat.checkpoint_num_classes(state, 'gaitset') is None
  with pytest.raises(ValueError, match='gaitsett'):
    torch_compat.checkpoint_num_classes(state, 'gaitsett')


def test_num_classes_mismatch_names_the_key_and_both_shapes():
  state = _state_dict('gaitgl', {'variant': 'tiny', 'num_classes': 9})
  with pytest.raises(torch_compat.CheckpointMismatchError) as err:
    torch_compat.load_opengait_checkpoint(state, 'gaitgl',
                                          {'variant': 'tiny',
                                           'num_classes': 8})
  msg = str(err.value)
  assert '1 shape mismatch' in msg and 'missing' not in msg, msg
  assert ('Head1.fc_bin: checkpoint (64, 8, 9), model expects (64, 8, 8)'
          in msg), msg
  assert 'the checkpoint has 9 classes, the model num_classes=8' in msg, msg


def test_one_error_lists_missing_unexpected_and_mismatched_keys():
  config = {'variant': 'tiny', 'num_classes': -1}
  state = _state_dict('baseline', {'variant': 'tiny'})
  del state['FCs.fc_bin']
  state['Head.extra'] = np.zeros((2, 3), np.float32)
  state['Backbone.forward_block.feature.2.conv.weight'] = np.zeros(
      (4, 5, 3, 3), np.float32)
  with pytest.raises(torch_compat.CheckpointMismatchError) as err:
    torch_compat.load_opengait_checkpoint(state, 'baseline', config)
  msg = str(err.value)
  for needle in (
      '1 missing', 'FCs.fc_bin (31, 16, 16) -> params/FCs/fc_bin',
      '1 unexpected', 'Head.extra (2, 3)',
      '1 shape mismatch',
      'Backbone.forward_block.feature.2.conv.weight: checkpoint (4, 5, 3, 3), '
      'model expects (4, 4, 3, 3) -> params/Backbone/2/conv/kernel'):
    assert needle in msg, (needle, msg)
  # Without a classifier entry, num_classes=-1 falls back to the variant's
  # default, and the classifier is reported missing with the others.
  del state['BNNecks.fc_bin']
  with pytest.raises(torch_compat.CheckpointMismatchError,
                     match=r'2 missing(.|\n)*BNNecks\.fc_bin \(31, 16, 8\)'):
    torch_compat.load_opengait_checkpoint(state, 'baseline', config)
