"""orbax restores whose event loops are drained on failure.

`drained_event_loops()` is a context manager: while it is active, a failed
orbax restore waits for its other in-flight reads before closing its event
loop, so that they do not complete on a closed loop and print screens of
``RuntimeError: Event loop is closed`` around the real cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Iterator

from absl import logging

try:
  from orbax.checkpoint._src import asyncio_utils as _orbax_asyncio_utils  # pylint: disable=g-import-not-at-top
except ImportError:  # Another orbax layout: restores work, noise included.
  _orbax_asyncio_utils = None

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


# The orbax function `drained_event_loops` swaps (a private one: if a later
# orbax lacks it, restores work as before, noise included).
_ORBAX_RUNNER = '_run_sync_via_new_loop'


@contextlib.contextmanager
def drained_event_loops() -> Iterator[None]:
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


def describe_error(err: BaseException) -> str:
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


