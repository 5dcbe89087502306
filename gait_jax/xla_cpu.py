"""XLA:CPU defaults for convolution-heavy training (applied on import).

jaxlib 0.10 hands convolutions on CPUs to YNNPACK fusions by default. For the
NHWC 3×3 and 5×5 convolutions of the gait models, forward and backward,
XLA's own (Eigen) convolutions are 1.3–2.1× faster on the same machine (see
docs/benchmarks.md), so `gait_jax` keeps YNNPACK for matrix products only:

  --xla_cpu_experimental_ynn_fusion_type=individual_dot

`apply_defaults` adds that flag to `XLA_FLAGS` unless the variable already
sets it, and must run before JAX initialises its backends: `import gait_jax`
does it, so import it (or any of its modules) before the first JAX
computation. Set the flag yourself to choose otherwise, e.g.
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution`
restores jaxlib's default convolutions. The flag only concerns the CPU
backend; GPU and TPU programs are unaffected.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import MutableMapping

YNN_FUSION_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
YNN_FUSION_DEFAULT = 'individual_dot'


def _backends_initialized() -> bool:
  if 'jax' not in sys.modules:
    return False
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return xla_bridge.backends_are_initialized()


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> bool:
  """Adds the CPU convolution default to `XLA_FLAGS` if the user set none.

  Args:
    environ: the environment to edit; None for this process's, in which
      case a warning says when JAX's backends already run (the flag is then
      still added, for child processes, but this process keeps jaxlib's
      default).

  Returns:
    Whether the flag was added (not when `XLA_FLAGS` already names it).
  """
  env = os.environ if environ is None else environ
  flags = env.get('XLA_FLAGS', '')
  if YNN_FUSION_FLAG.lstrip('-') in flags:
    return False
  env['XLA_FLAGS'] = f'{flags} {YNN_FUSION_FLAG}={YNN_FUSION_DEFAULT}'.strip()
  if environ is None and _backends_initialized():
    logging.warning(
        'gait_jax was imported after JAX initialised its backends, so this '
        'process keeps jaxlib\'s YNNPACK convolutions on CPU (1.3-2.1x '
        'slower for the gait models). Import gait_jax first, or set '
        'XLA_FLAGS=%s=%s.', YNN_FUSION_FLAG, YNN_FUSION_DEFAULT)
  return True
