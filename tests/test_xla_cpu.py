"""The XLA:CPU defaults that `import gait_jax` applies."""

import logging

import jax
import jax.numpy as jnp
import pytest

from gait_jax import xla_cpu

FLAG = '--xla_cpu_experimental_ynn_fusion_type'


def test_adds_flag_after_existing_flags():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  assert xla_cpu.apply_defaults(env)
  assert env['XLA_FLAGS'] == (
      f'--xla_force_host_platform_device_count=4 {FLAG}=individual_dot')


def test_adds_flag_to_empty_environment():
  env = {}
  assert xla_cpu.apply_defaults(env)
  assert env['XLA_FLAGS'] == f'{FLAG}=individual_dot'


def test_user_choice_is_kept():
  flags = f'{FLAG}=individual_dot,individual_convolution'
  env = {'XLA_FLAGS': flags}
  assert not xla_cpu.apply_defaults(env)
  assert env['XLA_FLAGS'] == flags


def test_warns_when_backends_already_initialised(monkeypatch, caplog):
  monkeypatch.delenv('XLA_FLAGS', raising=False)  # Restored afterwards.
  monkeypatch.setattr(xla_cpu, '_backends_initialized', lambda: True)
  with caplog.at_level(logging.WARNING):
    assert xla_cpu.apply_defaults()
  assert 'Import gait_jax first' in caplog.text


def _compiled_hlo(fn, *shapes) -> str:
  return jax.jit(fn).lower(*shapes).compile().as_text()


def test_convolutions_leave_ynnpack_and_dots_keep_it():
  """In this process (gait_jax imported first) the flag is in effect."""
  if jax.default_backend() != 'cpu':
    pytest.skip('a CPU-only flag')
  s = jax.ShapeDtypeStruct
  conv_hlo = _compiled_hlo(
      lambda x, k: jax.lax.conv_general_dilated(
          x, k, (1, 1), ((1, 1), (1, 1)),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC')),
      s((64, 32, 32, 32), jnp.float32), s((3, 3, 32, 32), jnp.float32))
  dot_hlo = _compiled_hlo(jnp.dot, s((64, 64), jnp.float32),
                          s((64, 64), jnp.float32))
  assert 'convolution(' in conv_hlo and '__ynn_fusion' not in conv_hlo
  assert '__ynn_fusion' in dot_hlo
