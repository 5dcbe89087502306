"""Rematerialisation of the backbones' blocks (the model field `remat`).

With `remat` other than 'none', every backbone block (a ResNet basic block,
a GaitSet set block, a Plain convolution with its activation and following
pool, a GaitGL GLConv, ...) runs under `flax.linen.remat` (`jax.checkpoint`):
the backward pass keeps only the blocks' inputs (and, with a policy, what the
policy saves) and recomputes each block's intermediates when it reaches it.
The parameters, their names and the results do not change; the train step
trades compute (about one more forward pass of the backbone) for memory.

Values:

* 'none' (default): no rematerialisation.
* 'blocks': each block saves nothing but its inputs.
* 'dots_saveable': each block also saves the outputs of its convolutions and
  matrix products (`jax.checkpoint_policies.dots_saveable`), recomputing only
  the cheap element-wise work (BatchNorm, activations) — less memory saved,
  less recomputed.

On CPUs, XLA expands `jax.checkpoint`'s optimization barriers (its pass
'cse_barrier_expander') before common-subexpression elimination, which then
merges each recomputed block back into the forward pass: the compiled step
keeps every activation, exactly as without remat. `compiler_options` gives
the option that keeps the barriers (`gait_jax.experiment.build_training`
passes it to the train step's `jax.jit`), so remat saves memory on CPUs too
and `launch.py --mode=compile` reports the rematerialised program.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax

REMAT = ('none', 'blocks', 'dots_saveable')
# XLA options that keep remat effective on CPUs (see the module docstring).
CPU_COMPILER_OPTIONS = {'xla_disable_hlo_passes': 'cse_barrier_expander'}
_POLICIES = {'blocks': None,
             'dots_saveable': jax.checkpoint_policies.dots_saveable}


def check_remat(remat: str) -> str:
  """Returns `remat` if it is one of `REMAT`, else raises ValueError."""
  if remat not in REMAT:
    raise ValueError(f'Unknown remat {remat!r}; valid: {", ".join(REMAT)}.')
  return remat


def policy(remat: str) -> Optional[Callable[..., bool]]:
  """The `jax.checkpoint` policy of `remat` (None: save only the inputs)."""
  check_remat(remat)
  return _POLICIES.get(remat)


def compiler_options(remat: str, platform: str) -> dict[str, str] | None:
  """XLA options for a step of a model with `remat` on `platform` (None:
  XLA's defaults)."""
  if check_remat(remat) != 'none' and platform == 'cpu':
    return dict(CPU_COMPILER_OPTIONS)
  return None


@functools.lru_cache(maxsize=None)
def wrap(cls: type[nn.Module], remat: str,
         static_argnums: tuple[int, ...] = ()) -> type[nn.Module]:
  """`cls`, rematerialised as `remat` says (`cls` itself for 'none').

  Args:
    cls: a Linen module class; instances must be given explicit names (the
      wrapped class has another class name, the parameter paths are the
      same).
    remat: one of `REMAT`.
    static_argnums: indices of non-array `__call__` arguments, counting
      `self` as 0 (e.g. `(2,)` for `__call__(self, x, train, mask)`).

  Returns:
    A module class with the same fields and parameters.
  """
  if check_remat(remat) == 'none':
    return cls
  return nn.remat(cls, static_argnums=static_argnums, policy=policy(remat))


def checkpoint(fn: Callable[..., Any], remat: str,
               static_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
  """`fn(module, *args)`, rematerialised as `remat` says.

  `fn` must create its submodules with `parent=module` (so they belong to the
  lifted scope); called with the enclosing module, the parameter paths are
  those of the same submodules created directly in it.

  Args:
    fn: a function whose first argument is a Linen module.
    remat: one of `REMAT`.
    static_argnums: indices of non-array arguments, counting the module as 0.

  Returns:
    `fn` or its `nn.remat` form.
  """
  if check_remat(remat) == 'none':
    return fn
  return nn.remat(fn, static_argnums=static_argnums, policy=policy(remat))
