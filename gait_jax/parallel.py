"""Device mesh, host batch → global array, and the per-device step mapping.

The training step is written for one device and mapped over the 1-D mesh axis
``'data'`` with ``jax.shard_map`` inside ``jax.jit`` (pmap-style SPMD): the
batch is split along its first axis, parameters and optimizer state are
replicated, and cross-device work (BatchNorm statistics, all-gathered
embeddings for the metric losses, gradient sums) is written explicitly with
collectives over ``DATA_AXIS``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def maybe_initialize_distributed(coordinator: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None) -> None:
  """Starts multi-host JAX when asked to, by arguments or the environment.

  Set ``--coordinator_address/--num_processes/--process_id`` or the variables
  ``GAIT_JAX_COORDINATOR``, ``GAIT_JAX_NUM_PROCESSES``, ``GAIT_JAX_PROCESS_ID``;
  on managed clusters (TPU pods, SLURM) ``GAIT_JAX_DISTRIBUTED=auto`` lets
  ``jax.distributed.initialize()`` discover everything itself. Without any of
  them this is a no-op (single process).

  Args:
    coordinator: ``host:port`` of process 0.
    num_processes: total number of processes.
    process_id: this process's index.
  """
  coordinator = coordinator or os.environ.get('GAIT_JAX_COORDINATOR')
  if num_processes is None and 'GAIT_JAX_NUM_PROCESSES' in os.environ:
    num_processes = int(os.environ['GAIT_JAX_NUM_PROCESSES'])
  if process_id is None and 'GAIT_JAX_PROCESS_ID' in os.environ:
    process_id = int(os.environ['GAIT_JAX_PROCESS_ID'])
  if coordinator:
    jax.distributed.initialize(coordinator_address=coordinator,
                               num_processes=num_processes,
                               process_id=process_id)
  elif os.environ.get('GAIT_JAX_DISTRIBUTED') == 'auto':
    jax.distributed.initialize()


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh over ``num_devices`` devices (default: all) on axis 'data'."""
  devices = jax.devices()
  if num_devices is not None:
    if num_devices > len(devices):
      raise ValueError(f'Asked for {num_devices} devices, only '
                       f'{len(devices)} are available.')
    devices = devices[:num_devices]
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_divisible(global_batch: int, mesh: jax.sharding.Mesh) -> None:
  """Raises if the global batch does not split evenly over the devices."""
  if global_batch % mesh.size:
    raise ValueError(
        f'The global batch P*K={global_batch} is not divisible by the '
        f'{mesh.size} devices of the mesh; change data.p or data.k.')


def host_to_global(mesh: jax.sharding.Mesh, host_batch: dict[str, Any]):
  """This host's slice of the batch → global arrays sharded on 'data'.

  Each process passes the rows it loaded (its contiguous slice of the global
  batch); the result is one global array per key.
  """
  sharding = batch_sharded(mesh)
  return {
      k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
      for k, v in host_batch.items()
  }


def shard_step(step_fn: Callable[..., Any], mesh: jax.sharding.Mesh, *,
               donate_state: bool = True,
               compiler_options: dict[str, Any] | None = None
               ) -> Callable[..., Any]:
  """jit(shard_map(step_fn)): (state, batch) → (state, metrics).

  ``step_fn(state, batch)`` runs on each device with the device's rows of
  ``batch``; ``state`` and the returned metrics are replicated.

  Args:
    step_fn: the per-device step.
    mesh: the 1-D 'data' mesh.
    donate_state: let XLA reuse the input state's buffers.
    compiler_options: XLA options of the step's compilation, or None.

  Returns:
    The jitted, mapped step.
  """
  mapped = jax.shard_map(step_fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)),
                         out_specs=(P(), P()))
  return jax.jit(mapped, donate_argnums=(0,) if donate_state else (),
                 compiler_options=compiler_options)
