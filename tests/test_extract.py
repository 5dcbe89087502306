"""Embedding extraction: 4 devices == 1 device == one sequence at a time,
and each device's rows are read once, by the process that holds them."""

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import experiment
from gait_jax import parallel
from gait_jax.data import pipeline
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource
from gait_jax.evaluation import extract
from train_utils import tiny_config


class _CountingSource:
  """A test split that records every batched read."""

  def __init__(self, source):
    self._source = source
    self.dataset_dir, self.split = source.dataset_dir, source.split
    self.lengths = source.lengths
    self.reads = []

  def __len__(self):
    return len(self.lengths)

  def frames(self, i):
    return self._source.frames(i)

  def frames_many(self, indices):
    self.reads.append([int(i) for i in indices])
    return self._source.frames_many(indices)


def test_sharded_extraction_equals_one_device_and_one_sequence(tiny_dataset):
  config = tiny_config(tiny_dataset)
  model = experiment.build_model(config, 6)
  sils = jnp.zeros((2, 6) + transforms.FRAME_SHAPE, jnp.float32)
  variables = model.init(jax.random.key(0), sils, mask=None, train=False)
  source = GaitSource(tiny_dataset, 'test')
  counted = _CountingSource(source)
  four = extract.extract_embeddings(model, variables, counted,
                                    parallel.make_mesh(4), batch_size=8,
                                    buckets=(8, 16))
  one = extract.extract_embeddings(model, variables, source,
                                   parallel.make_mesh(1), batch_size=8,
                                   buckets=(8, 16))
  np.testing.assert_allclose(four, one, atol=1e-5)
  # Every sequence was read exactly once, in reads of one device's rows
  # (8 rows over 4 devices: at most 2 per read).
  read = sorted(i for r in counted.reads for i in r)
  assert read == list(range(len(source)))
  assert max(len(r) for r in counted.reads) == 2
  # An unpadded sequence alone gives the same embedding.
  for i in (0, 17, len(source) - 1):
    x = transforms.to_unit_range(
        transforms.cut_width(source.frames(i))[None], jnp.float32)
    alone = model.apply(variables, x, mask=None, train=False)['embeddings']
    np.testing.assert_allclose(four[i], alone[0], atol=1e-5)


def test_eval_plan_covers_every_sequence_once_per_bucket(tiny_dataset):
  source = GaitSource(tiny_dataset, 'test')
  seen = []
  for indices, length in pipeline.eval_plan(source, batch_size=5,
                                            buckets=(8, 12), frame_limit=10,
                                            multiple_of=4):
    assert len(indices) == 8  # 5 rounded up to the 4 devices.
    real = indices[indices >= 0]
    assert np.all(np.minimum(source.lengths[real], 10) <= length)
    assert length in (8, 12)
    mask = pipeline.eval_mask(source, indices, length, frame_limit=10)
    np.testing.assert_array_equal(mask[indices >= 0].sum(1),
                                  np.minimum(source.lengths[real], 10))
    assert np.all(mask[indices < 0].sum(1) == 1)
    seen.extend(real.tolist())
  assert sorted(seen) == list(range(len(source)))
