"""Test-wide setup: four simulated CPU devices, float32 matmuls."""

import os

# Must happen before JAX initialises its backends.
os.environ.setdefault('XLA_FLAGS', '')
import jax  # pylint: disable=g-import-not-at-top

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_default_matmul_precision', 'highest')
