"""Orbax checkpoints of the train state, with automatic resume and a guard
against restoring a checkpoint of another model.

Layout: ``<workdir>/checkpoints/<step>/{state,meta}``. ``meta`` is JSON with
the model section of the config, the loss preset and the step; a workdir whose
checkpoints were written for another model is refused with a message naming
both, instead of an opaque tree-structure error.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
  """The workdir's checkpoint belongs to another model or configuration."""


def _jsonable(value: Any) -> Any:
  if hasattr(value, 'to_dict'):
    value = value.to_dict()
  return json.loads(json.dumps(value, default=str, sort_keys=True))


def checkpoint_meta(config) -> dict[str, Any]:
  """What identifies a checkpoint's shapes: the model section (and loss)."""
  return {
      'model': _jsonable(config.model),
      'loss_preset': str(config.loss.get('preset', '')),
  }


class Checkpointer:
  """Saves and restores the train state under ``<workdir>/checkpoints``.

  Args:
    workdir: the run's directory.
    max_to_keep: checkpoints kept (oldest deleted first).
    async_save: write in a background thread (call ``wait``/``close``).
  """

  def __init__(self, workdir: str, *, max_to_keep: int = 3,
               async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
        create=True)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_names=('state', 'meta'))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: Mapping[str, Any], *,
           force: bool = False) -> bool:
    """Saves ``state`` at ``step`` (asynchronously). Returns whether it did."""
    return self._manager.save(
        int(step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(dict(meta, step=int(step)))),
        force=force)

  def read_meta(self, step: int | None = None) -> dict[str, Any]:
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored['meta'])

  def check_compatible(self, meta: Mapping[str, Any],
                       step: int | None = None) -> None:
    """Raises ``CheckpointMismatchError`` if the stored model differs."""
    stored = self.read_meta(step)
    if stored.get('model') != meta.get('model'):
      diffs = _dict_diff(stored.get('model') or {}, meta.get('model') or {})
      raise CheckpointMismatchError(
          f'{self.directory} holds a checkpoint (step {stored.get("step")}) '
          f'of model {stored.get("model", {}).get("name")!r} with a different '
          f'configuration than the requested model '
          f'{meta.get("model", {}).get("name")!r}: {diffs}. Use a new '
          '--workdir, or the config the checkpoint was written with.')

  def restore(self, target: Any, step: int | None = None) -> Any:
    """Restores the state at ``step`` (default latest) into ``target``'s
    structure, shapes and shardings."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))
    return restored['state']

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _dict_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
  keys = sorted(set(a) | set(b))
  parts = [f'{k}: {a.get(k)!r} (checkpoint) vs {b.get(k)!r} (config)'
           for k in keys if a.get(k) != b.get(k)]
  return '; '.join(parts) or 'no field differs'
