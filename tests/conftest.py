"""Test-wide setup: four simulated CPU devices, float32 matmuls."""

import os

# Must happen before JAX initialises its backends.
os.environ.setdefault('XLA_FLAGS', '')
import gait_jax  # pylint: disable=g-import-not-at-top,unused-import  # XLA:CPU defaults.
import jax  # pylint: disable=g-import-not-at-top

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_default_matmul_precision', 'highest')
# Tests build the same tiny programs many times: share compilations.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(os.path.dirname(__file__), '..', '.cache',
                               'jax_tests'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)

import numpy as np  # pylint: disable=g-import-not-at-top,g-bad-import-order
import pytest  # pylint: disable=g-import-not-at-top,g-bad-import-order

TINY_TYPES = ('nm-01', 'nm-02', 'nm-03', 'nm-04', 'nm-05', 'nm-06', 'bg-01',
              'bg-02', 'cl-01', 'cl-02')
TINY_VIEWS = ('000', '090')


def blob_sequence(subject: int, type_index: int, view: int,
                  length: int) -> np.ndarray:
  """A cheap subject-dependent 'walker': uint8 [T, 64, 64] in {0, 255}."""
  yy, xx = np.mgrid[0:64, 0:64]
  frames = np.zeros((length, 64, 64), np.uint8)
  width = 5 + subject % 5 + (3 if type_index >= 8 else 0)  # cl: wider.
  for t in range(length):
    swing = (3 + subject % 3) * np.sin(2 * np.pi * t / (8 + subject % 4))
    body = ((xx - 32) / width) ** 2 + ((yy - 24) / 18.0) ** 2 <= 1
    legs = (yy > 36) & (np.abs(xx - 32 - swing * (yy - 36) / 28) < 3 + view)
    frames[t][body | legs] = 255
  return frames


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory) -> str:
  """A 10-subject (6 train / 4 test) dataset with CASIA-B naming."""
  from data_prep import tfds_writer  # pylint: disable=g-import-not-at-top
  train, test = [f'{i:03d}' for i in range(1, 7)], [
      f'{i:03d}' for i in range(7, 11)]

  def examples(subjects):
    def gen():
      for s in subjects:
        for ti, t in enumerate(TINY_TYPES):
          for vi, v in enumerate(TINY_VIEWS):
            length = 6 + (int(s) * 7 + ti * 3 + vi) % 9
            frames = blob_sequence(int(s), ti, vi, length)
            yield f'{s}-{t}-{v}', dict(frames=frames, subject=s, type=t,
                                       view=v, length=length)
    return gen

  data_dir = tmp_path_factory.mktemp('tiny_data')
  return tfds_writer.write_gait_dataset(
      'tiny_gait', str(data_dir),
      {'train': examples(train), 'test': examples(test)},
      metadata=dict(protocol='casia_b', views=list(TINY_VIEWS),
                    types=list(TINY_TYPES), train_subjects=train,
                    test_subjects=test, report={}))
