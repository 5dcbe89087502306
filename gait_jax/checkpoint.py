"""Orbax checkpoints of the train state: resume from the newest step that
restores, and a guard against resuming another model or optimizer.

Layout: ``<workdir>/checkpoints/<step>/{state,meta}``. ``meta`` is JSON with
the model, optimizer and schedule sections of the config, the loss preset and
the step (`checkpoint_meta`).

Damaged checkpoints: `Checkpointer.restore_latest` tries the steps newest
first. A step whose files do not read back (a garbled or truncated data file,
a missing ``_METADATA``, an unreadable ``meta``, a state whose content
fingerprint (`gait_jax.fingerprint`, stored in ``meta`` at save time) differs
from the one saved with it) is reported in one warning
line naming the step and the cause, and the next older step is tried. Once an
older step restores, the newer ones that did not are moved, whole, to
``<workdir>/checkpoints_damaged/<step>``: they stay on disk, but they are no
longer "latest", the step can be saved again, and ``max_to_keep`` counts only
the good checkpoints, so the one resumed from is not deleted before newer good
ones exist. When no step restores nothing is moved and one
`CheckpointRestoreError` lists every step tried and why it failed.

Compatibility (`check_meta`): the stored and requested metas are compared
section by section, on the sections both have (checkpoints written before the
optimizer and schedule were recorded are compared on the model alone):

* ``model``: must match exactly, except ``ops``, ``conv_kernel_grad`` and
  ``remat`` (which pick op implementations or rematerialisation and do not
  change the parameters).
* ``optim``: ``name`` must match, and for SGD so must whether ``momentum`` is
  0 (then the optimizer state has no momentum buffer): these change the
  optimizer state's tree. Every other field (``lr``, ``weight_decay``,
  ``nesterov``, Adam's ``b1``/``b2``/``eps``) may change on resume, with a
  warning naming it: lowering the rate on resume, or fine-tuning a converted
  checkpoint with another rate, is legitimate.
* ``schedule`` and ``loss_preset``: may change, with a warning.

A refused difference raises `CheckpointMismatchError` naming each
``section.field`` with the checkpoint's and the config's values, instead of an
opaque tree-structure error. Before the state is read, its stored tree (names
and shapes, from ``_METADATA``) is also compared with the target's, so a state
that does not fit is refused the same way and never taken for a damaged one.

Restores run orbax's event loops in a mode that, when one array fails to
read, waits for the reads still in flight before the loop is closed (see
`orbax_loops.drained_event_loops`): otherwise those reads complete on a
closed loop and print screens of ``RuntimeError: Event loop is closed`` (or, at interpreter
exit, ``ImportError: sys.meta_path is None``) around the real cause.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Mapping

from absl import logging
import jax
import orbax.checkpoint as ocp

from gait_jax import fingerprint as fingerprint_lib
from gait_jax import orbax_loops
from gait_jax.checkpoint_meta import MODEL_FIELDS_IGNORED  # pylint: disable=unused-import
from gait_jax.checkpoint_meta import check_meta
from gait_jax.checkpoint_meta import checkpoint_meta  # pylint: disable=unused-import

# The directory, next to ``checkpoints``, that damaged steps are moved to.
DAMAGED_DIR = 'checkpoints_damaged'
# The meta key of the saved state's content fingerprint.
FINGERPRINT_KEY = 'state_fingerprint'


class CheckpointMismatchError(ValueError):
  """The workdir's checkpoint belongs to another model or configuration."""


class CheckpointRestoreError(RuntimeError):
  """No checkpoint step of the workdir restores.

  Attributes:
    directory: the checkpoints directory.
    failures: ``{step: cause}`` for every step tried, newest first.
    errors: ``{step: exception}``, the exceptions the causes describe (not
      chained, so that their orbax tracebacks and TensorStore specs do not
      bury the message).
  """

  def __init__(self, directory: str, failures: Mapping[int, str],
               errors: Mapping[int, BaseException] | None = None):
    self.directory = directory
    self.failures = dict(failures)
    self.errors = dict(errors or {})
    lines = [f'No checkpoint in {directory} restores; tried '
             f'{len(self.failures)} step(s), newest first:']
    lines += [f'  step {step}: {cause}'
              for step, cause in self.failures.items()]
    lines.append('The files are left in place.')
    super().__init__('\n'.join(lines))


class _StepUnreadable(Exception):
  """One step's files do not read back (internal: drives the fallback)."""

  def __init__(self, cause: str):
    super().__init__(cause)
    self.cause = cause


class Checkpointer:
  """Saves and restores the train state under ``<workdir>/checkpoints``.

  Usable as a context manager (``close`` on exit, also on an error).

  Args:
    workdir: the run's directory.
    max_to_keep: checkpoints kept (oldest deleted first).
    async_save: write in a background thread (call ``wait``/``close``).
  """

  def __init__(self, workdir: str, *, max_to_keep: int = 3,
               async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self.damaged_directory = os.path.join(os.path.dirname(self.directory),
                                          DAMAGED_DIR)
    self._barriers = itertools.count()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
        create=True)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'meta': ocp.JsonCheckpointHandler()})

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def all_steps(self) -> list[int]:
    """The saved steps, oldest first (damaged ones moved aside excluded)."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: Mapping[str, Any], *,
           force: bool = False) -> bool:
    """Saves ``state`` at ``step`` (asynchronously). Returns whether it did.

    The meta gets the step and the state's content fingerprint, which
    restoring checks.
    """
    if not force and not self._manager.should_save(int(step)):
      return False
    meta = dict(meta, step=int(step),
                **{FINGERPRINT_KEY: fingerprint_lib.fingerprint(state)})
    return self._manager.save(
        int(step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(meta)),
        force=force)

  # --- Restoring. -----------------------------------------------------------

  def restore_latest(self, target: Any,
                     meta: Mapping[str, Any] | None = None, *,
                     set_aside: bool = True) -> tuple[Any, int] | None:
    """Restores the newest step that reads back, falling back to older ones.

    For each step, newest first: its meta is read and, if ``meta`` is given,
    checked (`check_compatible`) against that very step; then its state is
    restored into ``target``'s structure. A step whose files do not read back
    is logged in one warning line (step and cause) and the next older one is
    tried.

    Args:
      target: a state of the structure, shapes and shardings to restore
        (e.g. the freshly initialised train state).
      meta: the config's meta (`checkpoint_meta`); None: not checked.
      set_aside: once a step restores, move the newer steps that did not to
        `damaged_directory` (see the module docstring). False leaves the
        workdir untouched (a reader beside a running training).

    Returns:
      ``(state, step)``, or None when the workdir holds no checkpoint.

    Raises:
      CheckpointMismatchError: a step's meta or state tree does not fit the
        config; not a reason to fall back to an older step.
      CheckpointRestoreError: no step restores (one line per step tried).
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      return None
    failures: dict[int, str] = {}
    errors: dict[int, BaseException] = {}
    for step in steps:
      try:
        stored = self._read_meta(step)
        if meta is not None:
          self.check_compatible(meta, step, stored=stored)
        state = self._restore_state(target, step, stored)
      except _StepUnreadable as err:
        failures[step] = err.cause
        errors[step] = err.__cause__ or err
        older = [s for s in steps if s < step]
        logging.warning('Checkpoint step %d in %s does not restore (%s); %s.',
                        step, self.directory, err.cause,
                        f'trying step {older[0]}' if older else
                        'no older step to try')
        continue
      if failures and set_aside:
        self._set_aside(sorted(failures))
      return state, step
    raise CheckpointRestoreError(self.directory, failures, errors)

  def restore(self, target: Any, step: int | None = None) -> Any:
    """Restores the state at ``step`` (default latest) into ``target``'s
    structure, shapes and shardings.

    Raises:
      CheckpointMismatchError: the stored state tree does not fit ``target``.
      CheckpointRestoreError: the step's files do not read back.
    """
    step = self.latest_step() if step is None else int(step)
    try:
      return self._restore_state(target, step, self._read_meta(step))
    except _StepUnreadable as err:
      raise CheckpointRestoreError(self.directory, {step: err.cause},
                                   {step: err.__cause__ or err}) from None

  def read_meta(self, step: int | None = None) -> dict[str, Any]:
    """The meta stored at ``step`` (default latest).

    Raises:
      CheckpointRestoreError: it does not read back.
    """
    step = self.latest_step() if step is None else int(step)
    try:
      return self._read_meta(step)
    except _StepUnreadable as err:
      raise CheckpointRestoreError(self.directory, {step: err.cause},
                                   {step: err.__cause__ or err}) from None

  def check_compatible(self, meta: Mapping[str, Any],
                       step: int | None = None, *,
                       stored: Mapping[str, Any] | None = None) -> list[str]:
    """Checks the checkpoint at ``step`` (default latest) against ``meta``.

    The rule is `check_meta`'s. Tolerated differences are logged in one
    warning line.

    Args:
      meta: the config's meta (`checkpoint_meta`).
      step: the step whose meta is checked.
      stored: that step's meta, if already read.

    Returns:
      The tolerated differences.

    Raises:
      CheckpointMismatchError: a refused difference; the message names every
        differing ``section.field`` with both values.
      CheckpointRestoreError: the stored meta does not read back.
    """
    step = self.latest_step() if step is None else int(step)
    stored = self.read_meta(step) if stored is None else stored
    refused, tolerated = check_meta(stored, meta)
    if refused:
      stored_model = (stored.get('model') or {}).get('name')
      wanted_model = (meta.get('model') or {}).get('name')
      raise CheckpointMismatchError(
          f'{self.directory} holds a checkpoint (step {step}) of model '
          f'{stored_model!r} that the requested model {wanted_model!r} cannot '
          f'resume: {"; ".join(refused)}. Use a new --workdir, or the config '
          'the checkpoint was written with.')
    if tolerated:
      logging.warning('Resuming step %d of %s with changed settings (the '
                      'optimizer state is kept; these apply from here on): '
                      '%s.', step, self.directory, '; '.join(tolerated))
    return tolerated

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _read_meta(self, step: int) -> dict[str, Any]:
    path = os.path.join(self._step_dir(step), 'meta')
    try:
      with orbax_loops.drained_event_loops():
        restored = self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except Exception as err:  # pylint: disable=broad-exception-caught
      raise _StepUnreadable(f'meta ({path}): {orbax_loops.describe_error(err)}') from err
    value = restored['meta']
    if not isinstance(value, dict):
      raise _StepUnreadable(f'meta ({path}): not a JSON object but '
                            f'{type(value).__name__}')
    return dict(value)

  def _restore_state(self, target: Any, step: int,
                     stored_meta: Mapping[str, Any]) -> Any:
    path = os.path.join(self._step_dir(step), 'state')
    if not os.path.exists(os.path.join(path, '_METADATA')):
      raise _StepUnreadable(f'{os.path.join(path, "_METADATA")} is missing')
    try:
      with orbax_loops.drained_event_loops():
        stored = self._manager.item_metadata(step)['state']
    except Exception as err:  # pylint: disable=broad-exception-caught
      # Any failure to read the step's files makes it unreadable; it is only
      # set aside if an older step then restores (see `restore_latest`).
      raise _StepUnreadable(f'state ({path}): {orbax_loops.describe_error(err)}') from err
    if stored is None:
      raise _StepUnreadable(f'{path}/_METADATA does not read back')
    self._check_tree(getattr(stored, 'tree', stored), target, step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      with orbax_loops.drained_event_loops():
        restored = self._manager.restore(
            step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))
    except Exception as err:  # pylint: disable=broad-exception-caught
      raise _StepUnreadable(f'state ({path}): {orbax_loops.describe_error(err)}') from err
    saved = stored_meta.get(FINGERPRINT_KEY)
    if saved is not None:  # Checkpoints written before fingerprints: none.
      differ = fingerprint_lib.compare(
          saved, fingerprint_lib.fingerprint(restored['state']))
      if differ:
        raise _StepUnreadable(
            f'state ({path}): the content of {len(differ)} array(s) differs '
            f'from what was saved ({_some(differ)})')
    return restored['state']

  def _check_tree(self, stored: Any, target: Any, step: int) -> None:
    """Raises `CheckpointMismatchError` unless names and shapes agree."""
    have = ocp.tree.to_flat_dict(stored, sep='.')
    want = ocp.tree.to_flat_dict(target, sep='.')
    problems = []
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing:
      problems.append(f'not in the checkpoint: {_some(missing)}')
    if extra:
      problems.append(f'not in the requested state: {_some(extra)}')
    shapes = [f'{name} {tuple(have[name].shape)} (checkpoint) vs '
              f'{tuple(want[name].shape)} (config)'
              for name in sorted(set(have) & set(want))
              if hasattr(have[name], 'shape') and hasattr(want[name], 'shape')
              and tuple(have[name].shape) != tuple(want[name].shape)]
    if shapes:
      problems.append(f'shapes differ: {_some(shapes)}')
    if problems:
      raise CheckpointMismatchError(
          f'The state saved at step {step} in {self.directory} does not fit '
          f'the requested state: {"; ".join(problems)}. Use a new --workdir, '
          'or the config the checkpoint was written with.')

  def _set_aside(self, steps: list[int]) -> None:
    """Moves ``steps`` to `damaged_directory` (process 0), then reloads."""
    if jax.process_index() == 0:
      os.makedirs(self.damaged_directory, exist_ok=True)
      for step in steps:
        dest = os.path.join(self.damaged_directory, str(step))
        for n in itertools.count(1):
          if not os.path.exists(dest):
            break
          dest = os.path.join(self.damaged_directory, f'{step}.{n}')
        os.replace(self._step_dir(step), dest)
        logging.warning('Moved checkpoint step %d, which does not restore, '
                        'to %s.', step, dest)
    ocp.multihost.sync_global_processes(
        f'gait_jax_checkpoint_set_aside_{next(self._barriers)}')
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for a save in flight, then releases the manager."""
    try:
      self._manager.wait_until_finished()
    finally:
      self._manager.close()


def _some(names: list[str], limit: int = 8) -> str:
  shown = ', '.join(names[:limit])
  return shown + (f' and {len(names) - limit} more' if len(names) > limit
                  else '')
