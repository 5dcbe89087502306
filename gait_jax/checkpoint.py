"""Orbax checkpoints of the train state: resume from the newest step that
restores, and a guard against resuming another model or optimizer.

Layout: ``<workdir>/checkpoints/<step>/{state,meta}``. ``meta`` is JSON with
the model, optimizer and schedule sections of the config, the loss preset and
the step (`checkpoint_meta`).

Damaged checkpoints: `Checkpointer.restore_latest` tries the steps newest
first. A step whose files do not read back (a garbled or truncated data file,
a missing ``_METADATA``, an unreadable ``meta``) is reported in one warning
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

* ``model``: must match exactly, except ``ops`` and ``conv_kernel_grad``
  (which pick op implementations and do not change the parameters).
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
`_drained_event_loops`): otherwise those reads complete on a closed loop and
print screens of ``RuntimeError: Event loop is closed`` (or, at interpreter
exit, ``ImportError: sys.meta_path is None``) around the real cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import threading
from typing import Any, Iterator, Mapping

from absl import logging
import jax
import orbax.checkpoint as ocp

try:
  from orbax.checkpoint._src import asyncio_utils as _orbax_asyncio_utils  # pylint: disable=g-import-not-at-top
except ImportError:  # Another orbax layout: restores work, noise included.
  _orbax_asyncio_utils = None

# Model fields that do not change the parameters (not compared, not stored).
MODEL_FIELDS_IGNORED = ('ops', 'conv_kernel_grad')

# The directory, next to ``checkpoints``, that damaged steps are moved to.
DAMAGED_DIR = 'checkpoints_damaged'


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


def _jsonable(value: Any) -> Any:
  if hasattr(value, 'to_dict'):
    value = value.to_dict()
  return json.loads(json.dumps(value, default=str, sort_keys=True))


def checkpoint_meta(config) -> dict[str, Any]:
  """What identifies a checkpoint of ``config``.

  Args:
    config: the run's config.

  Returns:
    ``{'model', 'optim', 'schedule', 'loss_preset'}``: the config sections
    as JSON values, the model's ``ops`` and ``conv_kernel_grad`` fields left
    out.
  """
  model = _jsonable(config.model)
  for name in MODEL_FIELDS_IGNORED:
    model.pop(name, None)
  return {
      'model': model,
      'optim': _jsonable(config.optim),
      'schedule': _jsonable(config.schedule),
      'loss_preset': str(config.loss.get('preset', '')),
  }


def _sgd_has_momentum(optim: Mapping[str, Any]) -> bool:
  return bool(float(optim.get('momentum') or 0.0))


def _diff(section: str, stored: Mapping[str, Any],
          requested: Mapping[str, Any]) -> list[tuple[str, str]]:
  """``(field, 'section.field: a (checkpoint) vs b (config)')`` per field."""
  return [(key, f'{section}.{key}: {stored.get(key)!r} (checkpoint) vs '
                f'{requested.get(key)!r} (config)')
          for key in sorted(set(stored) | set(requested))
          if stored.get(key) != requested.get(key)]


def check_meta(stored: Mapping[str, Any],
               requested: Mapping[str, Any]) -> tuple[list[str], list[str]]:
  """Compares a checkpoint's meta with the one a config asks for.

  The rule is the module docstring's: the model must match exactly (but for
  ``ops``), the optimizer's name and, for SGD, whether it has momentum must
  match; other optimizer fields, the schedule and the loss preset may differ.
  Only sections present in both are compared.

  Args:
    stored: the checkpoint's meta.
    requested: the config's (`checkpoint_meta`).

  Returns:
    ``(refused, tolerated)``: the differences, each as ``'section.field:
    <checkpoint value> (checkpoint) vs <config value> (config)'``.
  """
  stored, requested = _jsonable(dict(stored)), _jsonable(dict(requested))
  refused, tolerated = [], []
  if isinstance(stored.get('model'), dict) and isinstance(
      requested.get('model'), dict):
    model_a, model_b = (
        {k: v for k, v in m.items() if k not in MODEL_FIELDS_IGNORED}
        for m in (stored['model'], requested['model']))
    refused += [text for _, text in _diff('model', model_a, model_b)]
  if isinstance(stored.get('optim'), dict) and isinstance(
      requested.get('optim'), dict):
    optim_a, optim_b = stored['optim'], requested['optim']
    both_named = 'name' in optim_a and 'name' in optim_b
    for key, text in _diff('optim', optim_a, optim_b):
      if key == 'name' and both_named:
        refused.append(text)
      elif (key == 'momentum' and both_named and
            optim_a['name'] == optim_b['name'] == 'sgd' and
            _sgd_has_momentum(optim_a) != _sgd_has_momentum(optim_b)):
        refused.append(f'{text} (momentum 0 keeps no momentum buffer)')
      else:
        tolerated.append(text)
  if isinstance(stored.get('schedule'), dict) and isinstance(
      requested.get('schedule'), dict):
    tolerated += [text for _, text in _diff('schedule', stored['schedule'],
                                            requested['schedule'])]
  if 'loss_preset' in stored and 'loss_preset' in requested and (
      stored['loss_preset'] != requested['loss_preset']):
    tolerated.append(f'loss_preset: {stored["loss_preset"]!r} (checkpoint) '
                     f'vs {requested["loss_preset"]!r} (config)')
  return refused, tolerated


# --- Orbax's event loops, drained on failure. -------------------------------
#
# orbax runs each restore in a fresh event loop (asyncio_utils.run_sync →
# _run_sync_via_new_loop) over an asyncio.gather of one tensorstore read per
# array. When one read fails, gather raises at once, run_until_complete
# returns and the loop is closed while the other reads are still in flight;
# as each completes, tensorstore's thread calls loop.call_soon_threadsafe on
# the closed loop and prints a "RuntimeError: Event loop is closed" traceback
# (or "ImportError: sys.meta_path is None" if that happens while the
# interpreter exits). The replacement below runs the loop on until those
# tasks are done before closing it.

_loops_lock = threading.Lock()
_loops_depth = 0
_loops_original = None


def _run_sync_draining(coro):
  """orbax's ``_run_sync_via_new_loop``, finishing in-flight tasks on error."""
  loop = asyncio.new_event_loop()
  try:
    asyncio.set_event_loop(loop)
    try:
      return loop.run_until_complete(coro)
    except Exception:
      pending = asyncio.all_tasks(loop)
      if pending:
        # The error being raised is the restore's; the in-flight reads'
        # outcomes are only awaited so that none lands on a closed loop.
        results = loop.run_until_complete(
            asyncio.gather(*pending, return_exceptions=True))
        for result in results:
          if isinstance(result, BaseException):
            logging.debug('Also failed during the same restore: %r', result)
      raise
  finally:
    asyncio.set_event_loop(None)
    loop.close()


# The orbax function `_drained_event_loops` swaps (a private one: if a later
# orbax lacks it, restores work as before, noise included).
_ORBAX_RUNNER = '_run_sync_via_new_loop'


@contextlib.contextmanager
def _drained_event_loops() -> Iterator[None]:
  """While active, orbax's synchronous runs drain their loop on failure."""
  global _loops_depth, _loops_original
  asyncio_utils = _orbax_asyncio_utils
  if not hasattr(asyncio_utils, _ORBAX_RUNNER):
    yield
    return
  with _loops_lock:
    if _loops_depth == 0:
      _loops_original = getattr(asyncio_utils, _ORBAX_RUNNER)
      setattr(asyncio_utils, _ORBAX_RUNNER, _run_sync_draining)
    _loops_depth += 1
  try:
    yield
  finally:
    with _loops_lock:
      _loops_depth -= 1
      if _loops_depth == 0:
        setattr(asyncio_utils, _ORBAX_RUNNER, _loops_original)


def _describe(err: BaseException) -> str:
  """One line: the root cause's type and message, tensorstore specs cut.

  orbax wraps a failed array read in an ``Exception`` whose message holds the
  whole TensorStore spec; the cause it chains names the array and the file.
  """
  seen = {id(err)}
  while True:
    cause = err.__cause__ or (None if err.__suppress_context__
                              else err.__context__)
    if cause is None or id(cause) in seen:
      break
    seen.add(id(cause))
    err = cause
  text = str(err)
  for cut in (' [tensorstore_spec', '. See full TensorStore details'):
    text = text.split(cut, 1)[0]
  text = text.replace('Error opening "cast" driver: ', '').replace(
      'Error opening "zarr" driver: ', '')
  text = ' '.join(text.split())
  if len(text) > 600:
    text = text[:600] + '...'
  return f'{type(err).__name__}: {text}'


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
    """Saves ``state`` at ``step`` (asynchronously). Returns whether it did."""
    return self._manager.save(
        int(step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(dict(meta, step=int(step)))),
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
        state = self._restore_state(target, step)
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
      return self._restore_state(target, step)
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
      with _drained_event_loops():
        restored = self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except Exception as err:  # pylint: disable=broad-exception-caught
      raise _StepUnreadable(f'meta ({path}): {_describe(err)}') from err
    value = restored['meta']
    if not isinstance(value, dict):
      raise _StepUnreadable(f'meta ({path}): not a JSON object but '
                            f'{type(value).__name__}')
    return dict(value)

  def _restore_state(self, target: Any, step: int) -> Any:
    path = os.path.join(self._step_dir(step), 'state')
    if not os.path.exists(os.path.join(path, '_METADATA')):
      raise _StepUnreadable(f'{os.path.join(path, "_METADATA")} is missing')
    try:
      with _drained_event_loops():
        stored = self._manager.item_metadata(step)['state']
    except Exception as err:  # pylint: disable=broad-exception-caught
      # Any failure to read the step's files makes it unreadable; it is only
      # set aside if an older step then restores (see `restore_latest`).
      raise _StepUnreadable(f'state ({path}): {_describe(err)}') from err
    if stored is None:
      raise _StepUnreadable(f'{path}/_METADATA does not read back')
    self._check_tree(getattr(stored, 'tree', stored), target, step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      with _drained_event_loops():
        restored = self._manager.restore(
            step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))
    except Exception as err:  # pylint: disable=broad-exception-caught
      raise _StepUnreadable(f'state ({path}): {_describe(err)}') from err
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
