"""The train state and the per-device train step.

The step is written for one device and mapped over the 1-D ``'data'`` mesh
axis by ``parallel.shard_step`` (``gait_jax.experiment.build_training`` does
both); the loop that drives it is in ``gait_jax.train``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from gait_jax import losses
from gait_jax import parallel
from gait_jax.data import transforms


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; replicated over the mesh."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def make_step_fn(model, tx: optax.GradientTransformation,
                 schedule: Callable[[Any], Any], loss_config,
                 samples_per_class: int, dtype,
                 seed: int = 0) -> Callable[..., Any]:
  """The per-device train step ``(state, batch) -> (state, metrics)``.

  Runs inside ``shard_map`` over ``parallel.DATA_AXIS``. The loss is the
  global-batch loss (``losses.compute_loss`` all-gathers embeddings and
  combines per-device sums); the gradient each device computes is the
  derivative of that loss through its own share of the computation (its
  samples, its anchors), so the full-batch gradient is their ``psum``. A step
  whose loss or gradient is not finite leaves the state unchanged.

  Args:
    model: the Linen module, built with ``axis_name=parallel.DATA_AXIS``.
    tx: the optimizer.
    schedule: its learning-rate schedule (logged as ``lr``).
    loss_config: the ``config.loss`` section.
    samples_per_class: K of the P×K batch.
    dtype: compute dtype of the input frames.
    seed: of the 'dropout' rng the model gets (stochastic depth), folded
      with the step and the device index (so resuming repeats it).

  Returns:
    The step function; its batch holds ``sils`` uint8 [b, s, h, w],
    ``labels`` int32 [b] and ``mask`` bool [b, s] (this device's rows).
  """
  axis = parallel.DATA_AXIS

  def step_fn(state: TrainState, batch):
    sils = transforms.to_unit_range(batch['sils'], dtype)  # [b, s, h, w]
    # Each device differentiates w.r.t. its own (varying) copy of the params.
    params = jax.lax.pcast(state.params, axis, to='varying')
    dropout = jax.random.fold_in(jax.random.fold_in(
        jax.random.key(seed), state.step), jax.lax.axis_index(axis))

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      outputs, mutated = model.apply(variables, sils, mask=batch['mask'],
                                     train=True, mutable=['batch_stats'],
                                     rngs={'dropout': dropout})
      loss, metrics = losses.compute_loss(
          outputs, batch['labels'], loss_config,
          samples_per_class=samples_per_class, axis_name=axis)
      return loss, (metrics, mutated.get('batch_stats', {}))

    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(params)
    grads = jax.lax.psum(grads, axis)  # Full-batch gradient, replicated.
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(step=state.step + 1, params=params,
                     batch_stats=batch_stats, opt_state=opt_state)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
    metrics = dict(metrics)
    metrics.update({
        'lr': schedule(state.step), 'grad_norm': grad_norm,
        'param_norm': optax.global_norm(params),
        'finite': finite.astype(jnp.float32)})
    return new, metrics

  return step_fn
