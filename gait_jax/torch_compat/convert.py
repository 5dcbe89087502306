"""OpenGait (PyTorch) state dicts to Flax variables.

The mapping runs from the Flax model to PyTorch: every Flax variable names the
state-dict key(s) it is read from (`opengait_state_dict_shapes`), so a
checkpoint is checked key by key against the model before anything is
converted. A Flax path `collection/module/.../leaf` becomes a key by joining
the modules with '.', inserting OpenGait's container segments and renaming the
leaf:

  Backbone/{i}/...           -> Backbone.forward_block.feature.{i}....
  Backbone/{name}/...        -> Backbone.forward_block.{name}....
  set_block{k}/...           -> set_block{k}.forward_block....
  DeepGaitV2: layer0/..., layer1/... (and layer2-4 in '2d' mode)
                             -> layerL.forward_block....; in 'p3d' mode
                                layerL/{i}/conv{1,2}/... ->
                                layerL.{i}.conv{1,2}.forward_block....
  TrackletGait: every module path as is (its Flax names are the
                                released keys, `gait_jax.models.trackletgait`)
  SwinGait: layer0-2 as DeepGaitV2 'p3d'; transformer/... as is (its Flax
                                names are OpenGait's keys, `gait_jax.models.
                                swin3d`)
  TFA/{conv}/{i}/kernel [P, k, I, O]
                             -> TFA.pooling_func.{conv}.{p}.{i}.conv.weight
                                [O, I, k], one per part p (GaitPart's
                                per-part Conv1d clones, stacked here)
  params .../kernel [*k, I, O]  -> .../weight [O, I, *k]
  params .../scale, .../bias    -> .../weight, .../bias (BatchNorm)
  batch_stats .../mean, .../var -> .../running_mean, .../running_var
  params .../fc_bin, .../p      -> unchanged

BatchNorm's `num_batches_tracked` entries and Swin attention's
`relative_position_index` buffers are accepted and dropped. The
BNNeck's `bn1d` vectors are reordered from OpenGait's channel-major index
`c * P + p` (or, for checkpoints written before mid-2022, part-major
`p * C + c`) to the part-major order used here.
"""

import collections
import os
from typing import Any, Mapping, NamedTuple, Optional, Union

import flax
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import models
from gait_jax.data import transforms

PathOrStateDict = Union[str, os.PathLike, Mapping[str, Any]]
Shape = tuple[int, ...]

LAYOUTS = ('channel_major', 'part_major')
# The classifier weight `[parts, channels, classes]` of each model that has
# one; GaitSet and GaitPart have none.
CLASSIFIER_KEYS = {'gaitgl': 'Head1.fc_bin', 'baseline': 'BNNecks.fc_bin',
                   'gaitbase': 'BNNecks.fc_bin', 'deepgaitv2': 'BNNecks.fc_bin',
                   'trackletgait': 'BNNecks.fc_bin',
                   'swingait': 'BNNecks.fc_bin'}

_BN_STATS = {'mean': 'running_mean', 'var': 'running_var'}
_PART_CONVS = frozenset({'conv1d3x1', 'conv1d3x3'})
_NUM_BATCHES = 'num_batches_tracked'
# Swin attention's constant buffer next to each bias table (dropped; the
# model derives it from the window).
_BIAS_TABLE, _BIAS_INDEX = ('relative_position_bias_table',
                            'relative_position_index')


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the model; the message lists every problem."""


class _Entry(NamedTuple):
  """Where a state-dict entry goes: Flax path, part index, PyTorch shape."""
  path: tuple[str, ...]
  part: Optional[int]
  shape: Shape


def _to_numpy(tensor: Any) -> np.ndarray:
  if hasattr(tensor, 'detach'):
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point():
      tensor = tensor.float()
    return tensor.numpy()
  return np.asarray(tensor)


def read_state_dict(path_or_state_dict: PathOrStateDict) -> dict[str, Any]:
  """Returns the model state dict of an OpenGait checkpoint.

  Args:
    path_or_state_dict: a `.pt` file written by OpenGait (a dict whose
      `'model'` entry is the state dict, next to optimizer and scheduler
      state), such a dict, or a bare state dict.

  Returns:
    `{key: tensor or array}`, with DataParallel's `module.` prefix removed.

  Raises:
    TypeError: not a path or a mapping.
  """
  obj = path_or_state_dict
  if isinstance(obj, (str, os.PathLike)):
    import torch  # pylint: disable=g-import-not-at-top
    # OpenGait checkpoints also hold optimizer/scheduler state; the
    # MultiStepLR state contains a Counter, the only non-tensor type needed.
    with torch.serialization.safe_globals([collections.Counter]):
      obj = torch.load(os.fspath(obj), map_location='cpu', weights_only=True)
  if not isinstance(obj, Mapping):
    raise TypeError(f'Expected a checkpoint path or a state dict, got '
                    f'{type(obj).__name__}.')
  if 'model' in obj and isinstance(obj['model'], Mapping):
    obj = obj['model']
  return {(k[len('module.'):] if k.startswith('module.') else k): v
          for k, v in obj.items()}


def checkpoint_num_classes(path_or_state_dict: PathOrStateDict,
                           model_name: str) -> Optional[int]:
  """The classifier size of an OpenGait checkpoint of model `model_name`.

  Args:
    path_or_state_dict: see `read_state_dict`.
    model_name: registry name (`gait_jax.models.model_names()`).

  Returns:
    The last dimension of the classifier weight (`CLASSIFIER_KEYS`); None for
    a model without a classifier (GaitSet, GaitPart), or when the checkpoint
    has no 3-D classifier weight (`load_opengait_checkpoint` then reports
    it).

  Raises:
    ValueError: unknown model name.
  """
  models.variant_names(model_name)  # Validates the name.
  key = CLASSIFIER_KEYS.get(model_name)
  if key is None:
    return None
  value = read_state_dict(path_or_state_dict).get(key)
  if value is None or len(value.shape) != 3:
    return None
  return int(value.shape[-1])


def resolve_model_config(path_or_state_dict: PathOrStateDict, model_name: str,
                         model_config: Mapping[str, Any]) -> dict[str, Any]:
  """`model_config` with `num_classes=-1` replaced by the checkpoint's count.

  Args:
    path_or_state_dict: see `read_state_dict`.
    model_name: registry name.
    model_config: keyword arguments of `gait_jax.models.get_model`; a
      `num_classes` of -1 ("from the data", as in `configs/`) is taken from
      the checkpoint's classifier, or dropped (the variant's default) when
      the checkpoint has none.

  Returns:
    A new dict.
  """
  config = dict(model_config)
  if config.get('num_classes') == -1:
    found = checkpoint_num_classes(path_or_state_dict, model_name)
    if found is None:
      del config['num_classes']
    else:
      config['num_classes'] = found
  return config


def expected_variables(model_name: str,
                       model_config: Mapping[str, Any]) -> dict[Any, Any]:
  """Shapes of the Flax variables of a model (no computation).

  Args:
    model_name: registry name.
    model_config: keyword arguments of `gait_jax.models.get_model`
      (including `variant`).

  Returns:
    Flat dict `{(collection, *path): jax.ShapeDtypeStruct}`.
  """
  model = models.get_model(model_name, **model_config)
  sils = jnp.zeros((1, 3, *transforms.FRAME_SHAPE), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), sils)
  return traverse_util.flatten_dict(flax.core.unfreeze(shapes))


def _module_key(modules: tuple[str, ...],
                set_block_stages: frozenset[str] = frozenset(),
                p3d: bool = False) -> list[str]:
  """PyTorch module segments of a Flax module path (containers inserted).

  Args:
    modules: the Flax module names, outermost first.
    set_block_stages: DeepGaitV2 stages wrapped whole in a SetBlockWrapper.
    p3d: DeepGaitV2 P3D blocks, whose conv1/conv2 are SetBlockWrappers.

  Returns:
    The state-dict key's module segments.
  """
  head, rest = modules[0], list(modules[1:])
  if head in set_block_stages:
    return [head, 'forward_block'] + rest
  if p3d and len(rest) >= 2 and rest[1] in ('conv1', 'conv2'):
    return [head] + rest[:2] + ['forward_block'] + rest[2:]
  if head == 'Backbone':
    return [head, 'forward_block'] + (
        ['feature'] if rest and rest[0].isdigit() else []) + rest
  if head.startswith('set_block'):
    return [head, 'forward_block'] + rest
  if head == 'TFA':
    return [head, 'pooling_func'] + rest
  return [head] + rest


def _torch_shape(leaf: str, shape: Shape) -> Shape:
  if leaf == 'kernel':  # [*k, I, O] -> [O, I, *k]
    return (shape[-1], shape[-2], *shape[:-2])
  return shape


def _key_options(model_name: str,
                 model_config: Mapping[str, Any]) -> dict[str, Any]:
  """Keyword arguments of `_module_key` for a model (DeepGaitV2's mode)."""
  if model_name == 'swingait':  # DeepGaitV2's P3D stem.
    return dict(set_block_stages=frozenset({'layer0', 'layer1'}), p3d=True)
  if model_name != 'deepgaitv2':
    return {}
  mode = models.get_model(model_name, **model_config).mode
  stages = {'layer0', 'layer1'}
  if mode == '2d':
    stages |= {'layer2', 'layer3', 'layer4'}
  return dict(set_block_stages=frozenset(stages), p3d=mode == 'p3d')


def _entries(expected: Mapping[Any, Any],
             key_options: Mapping[str, Any]) -> dict[str, _Entry]:
  """`{PyTorch key: _Entry}` of every variable a checkpoint must provide."""
  entries = {}
  for path, var in expected.items():
    coll, modules, leaf = path[0], path[1:-1], path[-1]
    shape = tuple(var.shape)
    segs = _module_key(modules, **key_options)
    if coll == 'batch_stats':
      entries['.'.join(segs + [_BN_STATS[leaf]])] = _Entry(path, None, shape)
      continue
    name = 'weight' if leaf in ('kernel', 'scale') else leaf
    if modules[0] == 'TFA' and len(modules) == 3 and modules[1] in _PART_CONVS:
      # TFA.pooling_func.{conv}.{part}.{i}.conv.weight, stacked over part.
      for part in range(shape[0]):
        key = '.'.join(segs[:3] + [str(part), segs[3], 'conv', name])
        entries[key] = _Entry(path, part, _torch_shape(leaf, shape[1:]))
      continue
    entries['.'.join(segs + [name])] = _Entry(path, None,
                                              _torch_shape(leaf, shape))
  return entries


def opengait_state_dict_shapes(model_name: str,
                               model_config: Mapping[str, Any]
                               ) -> dict[str, Shape]:
  """The keys and shapes of the OpenGait state dict of a model.

  Args:
    model_name: registry name.
    model_config: keyword arguments of `gait_jax.models.get_model`.

  Returns:
    `{key: shape}`, including BatchNorm's `num_batches_tracked` (shape `()`,
    which `load_opengait_checkpoint` does not require).
  """
  shapes = {}
  entries = _entries(expected_variables(model_name, model_config),
                     _key_options(model_name, model_config))
  for key, entry in entries.items():
    shapes[key] = entry.shape
    if key.endswith('.running_mean'):
      shapes[key[:-len('running_mean')] + _NUM_BATCHES] = ()
    if key.endswith('.' + _BIAS_TABLE):
      tokens = int(np.prod(models.get_model(model_name,
                                            **model_config).window))
      shapes[key[:-len(_BIAS_TABLE)] + _BIAS_INDEX] = (tokens, tokens)
  return shapes


def _shape(value: Any) -> Shape:
  return tuple(int(d) for d in getattr(value, 'shape', np.shape(value)))


def _flax_name(entry: _Entry) -> str:
  index = '' if entry.part is None else f'[{entry.part}]'
  return '/'.join(entry.path) + index


def _class_note(key: str, shape: Shape, want: Shape,
                model_name: str) -> str:
  if (key != CLASSIFIER_KEYS.get(model_name) or len(shape) != 3 or
      shape[-1] == want[-1]):
    return ''
  return (f' (the checkpoint has {shape[-1]} classes, the model '
          f'num_classes={want[-1]})')


def load_opengait_checkpoint(
    path_or_state_dict: PathOrStateDict,
    model_name: str,
    model_config: Mapping[str, Any],
    bnneck_layout: str = 'channel_major') -> dict[str, Any]:
  """Converts an OpenGait checkpoint into Flax variables for a model.

  Args:
    path_or_state_dict: see `read_state_dict`.
    model_name: registry name (`gait_jax.models.model_names()`).
    model_config: keyword arguments of `gait_jax.models.get_model`, e.g.
      `{'variant': 'casia_b'}` or a config's model section without 'name';
      `num_classes=-1` takes the class count from the checkpoint (see
      `resolve_model_config`), any other value is checked against it.
    bnneck_layout: order of `BNNecks.bn1d.*` entries: 'channel_major'
      (OpenGait since mid-2022, index `c * P + p`) or 'part_major' (older
      checkpoints, index `p * C + c`).

  Returns:
    `{'params': ..., 'batch_stats': ...}` (nested dicts of float32 arrays;
    `batch_stats` only where the model has BatchNorm).

  Raises:
    CheckpointMismatchError: one error listing every missing key (with the
      shape the model expects), every unexpected key (with its shape) and
      every shape mismatch (key, checkpoint and expected shapes).
    ValueError: unknown model name, variant or layout.
  """
  if bnneck_layout not in LAYOUTS:
    raise ValueError(f'Unknown bnneck_layout {bnneck_layout!r}; valid: '
                     f'{", ".join(LAYOUTS)}.')
  state = read_state_dict(path_or_state_dict)
  config = resolve_model_config(state, model_name, model_config)
  expected = expected_variables(model_name, config)
  entries = _entries(expected, _key_options(model_name, config))

  unexpected, mismatched = [], []
  for key, value in state.items():
    shape, entry = _shape(value), entries.get(key)
    if entry is None:
      bn = key[:-len(_NUM_BATCHES)] + 'running_mean'
      table = key[:-len(_BIAS_INDEX)] + _BIAS_TABLE
      if not ((key.endswith('.' + _NUM_BATCHES) and bn in entries) or
              (key.endswith('.' + _BIAS_INDEX) and table in entries)):
        unexpected.append(f'{key} {shape}')
    elif shape != entry.shape:
      mismatched.append(
          f'{key}: checkpoint {shape}, model expects {entry.shape} -> '
          f'{_flax_name(entry)}'
          f'{_class_note(key, shape, entry.shape, model_name)}')
  missing = [f'{key} {entry.shape} -> {_flax_name(entry)}'
             for key, entry in entries.items() if key not in state]
  if missing or unexpected or mismatched:
    lines = [f'Checkpoint does not match {model_name} {config}:']
    for title, items in (('missing', missing), ('unexpected', unexpected),
                         ('shape mismatch', mismatched)):
      if items:
        lines.append(f'  {len(items)} {title}:')
        lines += [f'    {item}' for item in items]
    raise CheckpointMismatchError('\n'.join(lines))

  out = {}
  stacked = collections.defaultdict(dict)  # path -> {part: array}
  for key, entry in entries.items():
    arr = _to_numpy(state[key])
    if entry.path[-1] == 'kernel':  # [O, I, *k] -> [*k, I, O]
      arr = np.transpose(arr, tuple(range(2, arr.ndim)) + (1, 0))
    if entry.part is None:
      out[entry.path] = arr
    else:
      stacked[entry.path][entry.part] = arr
  for path, parts in stacked.items():
    out[path] = np.stack([parts[i] for i in range(len(parts))])
  for path in out:
    if path[-3:-1] == ('BNNecks', 'bn1d'):
      out[path] = _bnneck_to_part_major(out[path], expected, path,
                                        bnneck_layout)
  # `jnp.array` copies: on CPU `jnp.asarray` may alias the checkpoint's
  # memory (a PyTorch tensor's), which the caller may go on changing.
  return traverse_util.unflatten_dict(
      {p: jnp.array(a, jnp.float32) for p, a in out.items()})


def _bnneck_to_part_major(arr: np.ndarray, expected: Mapping[Any, Any],
                          path: tuple[str, ...], layout: str) -> np.ndarray:
  if layout == 'part_major':
    return arr
  parts, channels, _ = expected[('params', *path[1:-2], 'fc_bin')].shape
  return arr.reshape(channels, parts).T.reshape(-1)
