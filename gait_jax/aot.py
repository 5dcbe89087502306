"""Ahead-of-time check: lower and compile the train step without data.

``launch.py --mode=compile`` builds abstract (shape-only) train state and
batch for a config and a mesh, compiles the sharded step and prints the memory
XLA reports for it, so an out-of-memory configuration is caught before a job
is launched (and before any dataset is read).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import optim
from gait_jax import parallel
from gait_jax import train


@dataclasses.dataclass(frozen=True)
class CompileReport:
  """What compiling the train step costs.

  Attributes:
    devices: devices of the mesh.
    global_batch: P*K sequences per step.
    num_params: model parameters.
    compile_seconds: lowering + compilation time.
    argument_bytes, output_bytes, temp_bytes, generated_code_bytes: per
      device, as XLA's memory analysis reports them (-1 if unavailable).
    flops: XLA's cost-analysis FLOPs of one step per device (-1 if
      unavailable).
  """
  devices: int
  global_batch: int
  num_params: int
  compile_seconds: float
  argument_bytes: int
  output_bytes: int
  temp_bytes: int
  generated_code_bytes: int
  flops: float

  @property
  def peak_bytes(self) -> int:
    return max(0, self.argument_bytes) + max(0, self.output_bytes) + max(
        0, self.temp_bytes)

  def format(self) -> str:
    gib = lambda b: f'{b / 2**30:.3f} GiB' if b >= 0 else 'n/a'
    return '\n'.join([
        f'devices: {self.devices}, global batch: {self.global_batch}, '
        f'parameters: {self.num_params:,}',
        f'compile time: {self.compile_seconds:.1f} s',
        f'per-device memory: arguments {gib(self.argument_bytes)}, outputs '
        f'{gib(self.output_bytes)}, temporaries {gib(self.temp_bytes)}, '
        f'code {gib(self.generated_code_bytes)}; peak estimate '
        f'{gib(self.peak_bytes)}',
        f'FLOPs per step per device: {self.flops:.3e}',
    ])


def compile_train_step(config, num_classes: int,
                       num_devices: int | None = None) -> CompileReport:
  """Compiles the sharded train step for ``config`` on a mesh, without data.

  Args:
    config: an experiment config.
    num_classes: classifier size (training subjects).
    num_devices: mesh size (default: all devices).

  Returns:
    A ``CompileReport``.
  """
  mesh = parallel.make_mesh(num_devices)
  batch = config.data.p * config.data.k
  parallel.check_batch_divisible(batch, mesh)
  model = train.build_model(config, num_classes, axis_name=parallel.DATA_AXIS)
  schedule = optim.make_schedule(config.optim, config.schedule,
                                 config.train.num_steps)
  tx = optim.make_optimizer(config.optim, schedule)
  start = time.perf_counter()
  state = jax.eval_shape(lambda: train.init_state(model, tx, config, mesh))
  state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=parallel.replicated(mesh)),
      state)
  sharded = parallel.batch_sharded(mesh)
  s = config.data.num_frames
  abstract_batch = {
      'sils': jax.ShapeDtypeStruct((batch, s, 64, 44), jnp.uint8,
                                   sharding=sharded),
      'labels': jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=sharded),
      'mask': jax.ShapeDtypeStruct((batch, s), jnp.bool_, sharding=sharded),
  }
  step = parallel.shard_step(
      train.make_step_fn(model, tx, schedule, config.loss, config.data.k,
                         train.compute_dtype(config)), mesh)
  compiled = step.lower(state, abstract_batch).compile()
  seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  field = lambda name: int(getattr(memory, name, -1)) if memory else -1
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get('flops', -1.0))
  except (NotImplementedError, RuntimeError):
    flops = -1.0  # Not every backend implements cost analysis.
  num_params = int(sum(np.prod(x.shape) for x in
                       jax.tree.leaves(state.params)))
  return CompileReport(
      devices=mesh.size, global_batch=batch, num_params=num_params,
      compile_seconds=seconds,
      argument_bytes=field('argument_size_in_bytes'),
      output_bytes=field('output_size_in_bytes'),
      temp_bytes=field('temp_size_in_bytes'),
      generated_code_bytes=field('generated_code_size_in_bytes'),
      flops=flops)
