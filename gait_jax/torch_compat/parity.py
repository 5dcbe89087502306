"""PyTorch-vs-Flax numeric parity of an OpenGait model and its conversion."""

import copy
from typing import Any, Mapping

from flax import traverse_util
import jax
import numpy as np

from gait_jax import models
from gait_jax.data import transforms
from gait_jax.torch_compat import convert


def deterministic_silhouettes(batch: int, frames: int, seed: int = 0,
                              height: int = transforms.FRAME_HEIGHT,
                              width: int = transforms.FRAME_WIDTH
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
                  bnneck_layout: str = 'channel_major',
                  frame_shape: tuple[int, int] = transforms.FRAME_SHAPE
                  ) -> dict[str, Any]:
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
    model_config: keyword arguments of `gait_jax.models.get_model`
      (`num_classes=-1`: from the module's classifier).
    batch: number of sequences.
    frames: frames per sequence.
    seed: seed of the deterministic input.
    train: compare in training mode (batch statistics).
    bnneck_layout: see `convert.load_opengait_checkpoint`.
    frame_shape: (height, width) of the input frames (SwinGait: 64x64).

  Returns:
    Dict with, per compared output ('embeddings', 'logits', 'batch_stats'),
    `{'max_abs': ..., 'max_rel': ...}` (max_rel = max abs / max |reference|),
    plus 'model', 'train', 'batch', 'frames'.
  """
  import torch  # pylint: disable=g-import-not-at-top
  module = copy.deepcopy(torch_module)
  state = {k: v.detach().clone() for k, v in module.state_dict().items()}
  config = convert.resolve_model_config(state, model_name, model_config)
  variables = convert.load_opengait_checkpoint(state, model_name, config,
                                               bnneck_layout)
  sils = deterministic_silhouettes(batch, frames, seed, *frame_shape)

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

  model = models.get_model(model_name, **config)
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
    torch_stats = convert.load_opengait_checkpoint(
        module.state_dict(), model_name, config,
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
