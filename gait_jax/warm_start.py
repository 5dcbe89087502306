"""Initialise a fresh train state from another run's checkpoint
(``train.init_from``), as OpenGait's ``restore_hint: <path>`` with
``restore_ckpt_strict: false`` and ``optimizer_reset: true`` do.

Every parameter and BatchNorm statistic of the new state whose path
(collection and module path) and shape match an entry of the checkpoint's
state takes the checkpoint's value; everything else keeps its
initialisation. The optimizer state and the step stay fresh. SwinGait starts
this way from a DeepGaitV2 checkpoint: the stems share their names
(``layer0..2``) and load, and so do ``FCs`` and ``BNNecks``, whose shapes
agree at Gait3D's sizes (as in OpenGait, whose non-strict load takes every
key the two state dicts share); the transformer keeps its init. The counts
are reported: loaded, skipped (same path, other shape; PyTorch's
``load_state_dict`` would raise here), missing (not in the checkpoint) and
unused (only in the checkpoint). With ``strict`` any skipped, missing or
unused entry is an error naming them.

The source is a gait_jax workdir (its newest step under ``checkpoints/``) or
one step directory ``<workdir>/checkpoints/<step>``; the run that wrote it may
have used another model, optimizer or mesh.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from absl import logging
from flax import traverse_util
import jax
import numpy as np
import orbax.checkpoint as ocp

_COLLECTIONS = ('params', 'batch_stats')


class InitReport(NamedTuple):
  """Paths ('/'-joined, collection first) by outcome."""
  loaded: list[str]
  skipped: list[str]  # 'path (checkpoint shape vs model shape)'
  missing: list[str]
  unused: list[str]

  def summary(self) -> str:
    return (f'{len(self.loaded)} loaded, {len(self.skipped)} skipped (shape '
            f'mismatch), {len(self.missing)} missing, {len(self.unused)} '
            'unused')


def _state_dir(source: str) -> str:
  """The orbax ``state`` item directory of a workdir or step directory."""
  source = os.path.abspath(source)
  step_dir = source
  if not os.path.isdir(os.path.join(source, 'state')):
    ckpts = os.path.join(source, 'checkpoints')
    steps = sorted(int(d) for d in (os.listdir(ckpts) if os.path.isdir(ckpts)
                                    else []) if d.isdigit())
    if not steps:
      raise FileNotFoundError(
          f'train.init_from={source!r} holds no checkpoint (expected a '
          'workdir with checkpoints/<step>/state, or such a step directory).')
    step_dir = os.path.join(ckpts, str(steps[-1]))
  return os.path.join(step_dir, 'state')


def _flat(tree: Any) -> dict[str, Any]:
  flat = traverse_util.flatten_dict(dict(tree) if tree else {})
  return {'/'.join(map(str, k)): v for k, v in flat.items()}


def load_matching(state: Any, source: str, *, strict: bool = False
                  ) -> tuple[Any, InitReport]:
  """``state`` with the checkpoint's matching params and BatchNorm stats.

  Args:
    state: a freshly initialised `TrainState` (its leaves' shardings are
      kept).
    source: a workdir or a step directory (module doc).
    strict: raise unless every entry of both sides matches.

  Returns:
    ``(new state, report)``.

  Raises:
    FileNotFoundError: no checkpoint at ``source``.
    ValueError: ``strict`` and something did not match (names the paths).
  """
  path = _state_dir(source)
  with ocp.StandardCheckpointer() as reader:
    stored = reader.restore(path)
  loaded, skipped, missing, unused, new = [], [], [], [], {}
  for coll in _COLLECTIONS:
    have = _flat(stored.get(coll) if isinstance(stored, dict) else
                 getattr(stored, coll, None))
    want = _flat(getattr(state, coll))
    out = {}
    for key, leaf in want.items():
      name = f'{coll}/{key}'
      if key not in have:
        missing.append(name)
      elif tuple(np.shape(have[key])) != tuple(leaf.shape):
        skipped.append(f'{name} ({tuple(np.shape(have[key]))} vs '
                       f'{tuple(leaf.shape)})')
      else:
        loaded.append(name)
        value = np.asarray(have[key]).astype(leaf.dtype)
        leaf = jax.device_put(value, leaf.sharding)
      out[tuple(key.split('/'))] = leaf
    unused += [f'{coll}/{k}' for k in have if k not in want]
    new[coll] = traverse_util.unflatten_dict(out) if out else getattr(state,
                                                                      coll)
  report = InitReport(loaded, skipped, missing, unused)
  if strict and (skipped or missing or unused):
    raise ValueError(
        f'train.init_from={source!r} with train.init_from_strict: '
        f'{report.summary()}; ' + '; '.join(
            f'{title}: {", ".join(items)}' for title, items in (
                ('skipped', skipped), ('missing', missing),
                ('unused', unused)) if items))
  logging.info('Initialised from %s: %s.', path, report.summary())
  return state.replace(params=new['params'],
                       batch_stats=new['batch_stats']), report
