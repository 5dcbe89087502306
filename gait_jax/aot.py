"""Ahead-of-time check: lower and compile the train step without data.

``launch.py --mode=compile`` builds abstract (shape-only) train state and
batch for a config and a mesh, compiles the sharded step and prints the memory
XLA reports for it, so an out-of-memory configuration is caught before a job
is launched (and before any dataset is read).
"""

from __future__ import annotations

import dataclasses
import time

from gait_jax import experiment


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


def compile_train_step(config, num_classes: int) -> CompileReport:
  """Compiles the sharded train step of ``config`` on its mesh, without data.

  Args:
    config: an experiment config (``train.num_devices`` sets the mesh).
    num_classes: classifier size (``experiment.num_classes(config)``).

  Returns:
    A ``CompileReport``.
  """
  start = time.perf_counter()
  run = experiment.build_training(config, num_classes, abstract=True)
  batch = experiment.abstract_batch(config, run.mesh)
  compiled = run.step.lower(run.state, batch).compile()
  seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  field = lambda name: int(getattr(memory, name, -1)) if memory else -1
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get('flops', -1.0))
  except (NotImplementedError, RuntimeError):
    flops = -1.0  # Not every backend implements cost analysis.
  return CompileReport(
      devices=run.mesh.size, global_batch=config.data.p * config.data.k,
      num_params=run.num_params, compile_seconds=seconds,
      argument_bytes=field('argument_size_in_bytes'),
      output_bytes=field('output_size_in_bytes'),
      temp_bytes=field('temp_size_in_bytes'),
      generated_code_bytes=field('generated_code_size_in_bytes'),
      flops=flops)
