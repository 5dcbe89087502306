"""OpenGait (PyTorch) checkpoints to Flax variables, and numeric parity checks.

This is the only module that uses PyTorch, and it imports it inside functions,
so `import gait_jax` works without it.

Key mapping: a PyTorch key maps to a Flax path by splitting on '.', dropping
the container segments `forward_block`, `feature` and `pooling_func`, and
renaming the leaf:

  conv weight [O, I, *k]   -> params .../kernel  [*k, I, O]
  BN weight / bias         -> params .../scale, .../bias
  BN running_mean / _var   -> batch_stats .../mean, .../var
  num_batches_tracked      -> dropped
  fc_bin, p                -> params .../fc_bin, .../p (unchanged)

Two entries need more than that: GaitPart's 16 per-part Conv1d clones
(`TFA.pooling_func.conv1d3x1.{part}.{i}.conv.weight`) are stacked into one
kernel `[parts, k, I, O]`, and the BNNeck's `bn1d` vectors are reordered from
OpenGait's channel-major index `c * P + p` (or, for checkpoints written before
mid-2022, part-major `p * C + c`) to the part-major order used here.
"""

import collections
import copy
import os
from typing import Any, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import flax
from flax import traverse_util
import numpy as np

from gait_jax import models

_CONTAINERS = frozenset({'forward_block', 'feature', 'pooling_func'})
_PART_CONVS = frozenset({'conv1d3x1', 'conv1d3x3'})
_BN_LEAVES = {'running_mean': ('batch_stats', 'mean'),
              'running_var': ('batch_stats', 'var')}
_LAYOUTS = ('channel_major', 'part_major')


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the model; the message lists every problem."""


def _to_numpy(tensor: Any) -> np.ndarray:
  if hasattr(tensor, 'detach'):
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point():
      tensor = tensor.float()
    return tensor.numpy()
  return np.asarray(tensor)


def _load_state_dict(path_or_state_dict: Any) -> Mapping[str, Any]:
  """Returns the model state dict from a checkpoint file or mapping."""
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


def expected_variables(model_name: str,
                       model_config: Mapping[str, Any]) -> dict[str, Any]:
  """Shapes of the Flax variables of a model (no computation).

  Args:
    model_name: registry name.
    model_config: keyword arguments of `gait_jax.models.get_model`
      (including `variant`).

  Returns:
    Flat dict `{(collection, *path): jax.ShapeDtypeStruct}`.
  """
  model = models.get_model(model_name, **model_config)
  sils = jnp.zeros((1, 3, 64, 44), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), sils)
  return traverse_util.flatten_dict(flax.core.unfreeze(shapes))


def _map_key(key: str) -> Optional[tuple[tuple[str, ...], Optional[int]]]:
  """Maps a PyTorch key to (Flax path, part index or None); None = drop."""
  segs = [s for s in key.split('.') if s not in _CONTAINERS]
  leaf, path = segs[-1], segs[:-1]
  part = None
  if len(path) >= 3 and path[0] == 'TFA' and path[1] in _PART_CONVS:
    # TFA.conv1d3x1.{part}.{i}.conv -> TFA/conv1d3x1/{i} (stacked over part).
    if not path[2].isdigit() or path[-1] != 'conv':
      return tuple(segs), None
    part = int(path[2])
    path = path[:2] + path[3:-1]
  if leaf == 'num_batches_tracked':
    return None
  if leaf in _BN_LEAVES:
    coll, name = _BN_LEAVES[leaf]
    return (coll, *path, name), part
  if leaf == 'weight':
    return ('params', *path, '<weight>'), part
  return ('params', *path, leaf), part


def _convert_weight(arr: np.ndarray) -> tuple[str, np.ndarray]:
  if arr.ndim == 1:
    return 'scale', arr
  # [O, I, *k] -> [*k, I, O]
  return 'kernel', np.transpose(arr, tuple(range(2, arr.ndim)) + (1, 0))


def load_opengait_checkpoint(
    path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]],
    model_name: str,
    model_config: Mapping[str, Any],
    bnneck_layout: str = 'channel_major') -> dict[str, Any]:
  """Converts an OpenGait checkpoint into Flax variables for a model.

  Args:
    path_or_state_dict: a `.pt` file written by OpenGait (a dict with a
      `'model'` entry), such a dict, or a bare state dict.
    model_name: registry name (`gait_jax.models.model_names()`).
    model_config: keyword arguments of `gait_jax.models.get_model`, e.g.
      `{'variant': 'casia_b'}`.
    bnneck_layout: order of `BNNecks.bn1d.*` entries: 'channel_major'
      (OpenGait since mid-2022, index `c * P + p`) or 'part_major' (older
      checkpoints, index `p * C + c`).

  Returns:
    `{'params': ..., 'batch_stats': ...}` (nested dicts of float32 arrays;
    `batch_stats` only where the model has BatchNorm).

  Raises:
    CheckpointMismatchError: listing all missing Flax variables, unexpected
      checkpoint keys and shape mismatches.
    ValueError: unknown model name, variant or layout.
  """
  if bnneck_layout not in _LAYOUTS:
    raise ValueError(f'Unknown bnneck_layout {bnneck_layout!r}; valid: '
                     f'{", ".join(_LAYOUTS)}.')
  expected = expected_variables(model_name, model_config)
  state = _load_state_dict(path_or_state_dict)

  out: dict[tuple[str, ...], np.ndarray] = {}
  stacked = collections.defaultdict(dict)  # path -> {part: (key, array)}
  unexpected, mismatched = [], []
  seen = set()  # Flax paths the checkpoint provides (fitting or not).
  for key, value in state.items():
    mapped = _map_key(key)
    if mapped is None:
      continue
    path, part = mapped
    arr = _to_numpy(value)
    if path[-1] == '<weight>':
      leaf, arr = _convert_weight(arr)
      path = path[:-1] + (leaf,)
    if path not in expected:
      unexpected.append(f'{key} {tuple(arr.shape)}')
      continue
    seen.add(path)
    if part is not None:
      stacked[path][part] = (key, arr)
      continue
    want = tuple(expected[path].shape)
    if path[-3:-1] == ('BNNecks', 'bn1d') and arr.shape == want:
      arr = _bnneck_to_part_major(arr, expected, path, bnneck_layout)
    if arr.shape != want:
      mismatched.append(f'{key}: checkpoint {tuple(value.shape)} -> '
                        f'{"/".join(path)} {tuple(arr.shape)}, model expects '
                        f'{want}')
      continue
    out[path] = arr

  missing = []
  for path, parts in stacked.items():
    want = tuple(expected[path].shape)
    absent = sorted(set(range(want[0])) - set(parts))
    extra = sorted(set(parts) - set(range(want[0])))
    unexpected += [f'{parts[i][0]} (part {i} of {want[0]})' for i in extra]
    missing += [f'{"/".join(path)}[{i}]' for i in absent]
    bad = [f'{k}: checkpoint {a.shape[::-1]} -> {"/".join(path)}[{i}] '
           f'{a.shape}, model expects {want[1:]}'
           for i, (k, a) in sorted(parts.items())
           if i < want[0] and a.shape != want[1:]]
    mismatched += bad
    if not absent and not extra and not bad:
      out[path] = np.stack([parts[i][1] for i in range(want[0])])
  missing += ['/'.join(p) for p in expected if p not in seen]
  if missing or unexpected or mismatched:
    lines = [f'Checkpoint does not match {model_name} {dict(model_config)}:']
    for title, items in (('missing', missing), ('unexpected', unexpected),
                         ('shape mismatch', mismatched)):
      if items:
        lines.append(f'  {len(items)} {title}:')
        lines += [f'    {item}' for item in items]
    raise CheckpointMismatchError('\n'.join(lines))
  return traverse_util.unflatten_dict(
      {p: jnp.asarray(a, jnp.float32) for p, a in out.items()})


def _bnneck_to_part_major(arr: np.ndarray, expected: Mapping[Any, Any],
                          path: tuple[str, ...], layout: str) -> np.ndarray:
  if layout == 'part_major':
    return arr
  parts, channels, _ = expected[('params', *path[1:-2], 'fc_bin')].shape
  return arr.reshape(channels, parts).T.reshape(-1)


# ------------------------------- parity -------------------------------------


def deterministic_silhouettes(batch: int, frames: int, seed: int = 0,
                              height: int = 64, width: int = 44
                              ) -> np.ndarray:
  """Smooth, blob-like inputs in [0, 1], `[batch, frames, h, w]` float32."""
  rng = np.random.default_rng(seed)
  ys = np.linspace(-1.0, 1.0, height)[None, None, :, None]
  xs = np.linspace(-1.0, 1.0, width)[None, None, None, :]
  centre = rng.uniform(-0.3, 0.3, (batch, frames, 2, 1, 1))
  body = np.exp(-((ys - centre[:, :, 0]) ** 2 / 0.5 +
                  (xs - centre[:, :, 1]) ** 2 / 0.1))
  noise = rng.uniform(0.0, 0.2, (batch, frames, height, width))
  return np.clip(body + noise, 0.0, 1.0).astype(np.float32)


def _torch_outputs(retval: Mapping[str, Any]) -> tuple[Any, Any]:
  """(embeddings [n, c, p], logits [n, K, p] or None) of an OpenGait output."""
  emb = retval['inference_feat']['embeddings']
  softmax = retval.get('training_feat', {}).get('softmax')
  return emb, (None if softmax is None else softmax['logits'])


def _diff(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
  err = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
  scale = float(np.max(np.abs(ref))) if ref.size else 0.0
  return {'max_abs': float(err.max(initial=0.0)),
          'max_rel': float(err.max(initial=0.0)) / max(scale, 1e-12)}


def parity_report(torch_module: Any, model_name: str,
                  model_config: Mapping[str, Any], *, batch: int = 2,
                  frames: int = 8, seed: int = 0, train: bool = False,
                  bnneck_layout: str = 'channel_major') -> dict[str, Any]:
  """Runs an OpenGait model and its converted Flax twin on the same input.

  The PyTorch module must follow OpenGait's `BaseModel.forward` interface:
  it takes `(ipts, labs, typs, vies, seqL)` and returns a dict with
  `inference_feat.embeddings` `[n, c, p]` and, for classifiers,
  `training_feat.softmax.logits` `[n, K, p]`. In eval mode each sequence is
  fed alone (OpenGait's one-sequence-per-device rule); in train mode the
  whole batch is fed, and the updated BatchNorm running statistics are
  compared too. The module itself is not modified.

  Args:
    torch_module: the OpenGait (or compatible) model.
    model_name: registry name of the Flax model.
    model_config: keyword arguments of `gait_jax.models.get_model`.
    batch: number of sequences.
    frames: frames per sequence.
    seed: seed of the deterministic input.
    train: compare in training mode (batch statistics).
    bnneck_layout: see `load_opengait_checkpoint`.

  Returns:
    Dict with, per compared output ('embeddings', 'logits', 'batch_stats'),
    `{'max_abs': ..., 'max_rel': ...}` (max_rel = max abs / max |reference|),
    plus 'model', 'train', 'batch', 'frames'.
  """
  import torch  # pylint: disable=g-import-not-at-top
  module = copy.deepcopy(torch_module)
  state = {k: v.detach().clone() for k, v in module.state_dict().items()}
  variables = load_opengait_checkpoint(state, model_name, model_config,
                                       bnneck_layout)
  sils = deterministic_silhouettes(batch, frames, seed)

  def run_torch(x):
    inputs = ([torch.from_numpy(x)], torch.zeros(x.shape[0], dtype=torch.long),
              None, None, None)
    emb, logits = _torch_outputs(module(inputs))
    return (emb.detach().float().numpy(),
            None if logits is None else logits.detach().float().numpy())

  with torch.no_grad():
    if train:
      module.train()
      t_emb, t_logits = run_torch(sils)
    else:
      module.eval()
      outs = [run_torch(sils[i:i + 1]) for i in range(batch)]
      t_emb = np.concatenate([o[0] for o in outs])
      t_logits = (None if outs[0][1] is None else
                  np.concatenate([o[1] for o in outs]))

  model = models.get_model(model_name, **model_config)
  if train:
    out, new_state = jax.jit(lambda v, x: model.apply(
        v, x, train=True, mutable=['batch_stats']))(variables, sils)
  else:
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables,
                                                               sils)
    new_state = {}
  report = {'model': model_name, 'train': train, 'batch': batch,
            'frames': frames}
  report['embeddings'] = _diff(
      np.swapaxes(np.asarray(out['embeddings']), 1, 2), t_emb)
  if t_logits is not None and 'logits' in out:
    report['logits'] = _diff(np.asarray(out['logits']), t_logits)
  if train and new_state.get('batch_stats'):
    torch_stats = load_opengait_checkpoint(
        module.state_dict(), model_name, model_config,
        bnneck_layout)['batch_stats']
    ours = traverse_util.flatten_dict(dict(new_state['batch_stats']))
    ref = traverse_util.flatten_dict(dict(torch_stats))
    diffs = [_diff(np.asarray(ours[k]), np.asarray(ref[k])) for k in ref]
    report['batch_stats'] = {
        'max_abs': max(d['max_abs'] for d in diffs),
        'max_rel': max(d['max_rel'] for d in diffs)}
  return report


def format_parity_report(report: Mapping[str, Any]) -> str:
  """Formats a `parity_report` result as a few aligned lines."""
  mode = 'train' if report.get('train') else 'eval'
  lines = [f"{report.get('model')} ({mode}, batch {report.get('batch')}, "
           f"{report.get('frames')} frames)"]
  for name in ('embeddings', 'logits', 'batch_stats'):
    if name in report:
      d = report[name]
      lines.append(f"  {name:<12} max abs {d['max_abs']:.3e}   "
                   f"max rel {d['max_rel']:.3e}")
  return '\n'.join(lines)
