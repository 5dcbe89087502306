"""The record format of gait datasets and its TFDS encoding.

One record per silhouette sequence (see `data_prep.tfds_writer`):

  frames   Tensor(shape=(None, 64, 64), dtype=uint8, encoding='zlib')
  subject  Text     e.g. '001'
  type     Text     e.g. 'nm-01' (CASIA-B) or '00' (OUMVLP)
  view     Text     e.g. '090'
  length   Scalar(int32), the number of frames T

This module holds the features, the check of one example against them,
`EncodedFrames` (frames handed over already compressed) and the
deterministic serialisation the writer uses, so that writing the same
examples twice gives the same shard bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
import dataclasses
from typing import Any
import zlib

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

FRAME_SIZE = 64
TEXT_KEYS = ('subject', 'type', 'view')
EXAMPLE_KEYS = ('frames',) + TEXT_KEYS + ('length',)


@dataclasses.dataclass(frozen=True)
class EncodedFrames:
  """Frames in their stored form.

  Attributes:
    data: `zlib.compress(frames.tobytes())` of uint8 [T, size, size] frames
      (any zlib level).
    shape: (T, size, size).
  """
  data: bytes
  shape: tuple[int, int, int]

  @classmethod
  def from_array(cls, frames: np.ndarray) -> 'EncodedFrames':
    return cls(zlib.compress(np.ascontiguousarray(frames).tobytes()),
               tuple(int(d) for d in frames.shape))


class InvalidExampleError(ValueError):
  """An example handed to the writer does not follow the record format."""


def gait_features(frame_size: int = FRAME_SIZE) -> tfds.features.FeaturesDict:
  """Returns the TFDS features of one gait sequence record (as stored)."""
  return tfds.features.FeaturesDict({
      'frames': tfds.features.Tensor(
          shape=(None, frame_size, frame_size),
          dtype=np.uint8,
          encoding='zlib',
      ),
      'subject': tfds.features.Text(),
      'type': tfds.features.Text(),
      'view': tfds.features.Text(),
      'length': tfds.features.Scalar(dtype=np.int32),
  })


def validate_example(
    key: Any,
    example: Mapping[str, Any],
    *,
    split: str = '?',
    frame_size: int = FRAME_SIZE,
) -> dict[str, Any]:
  """Checks one example and returns it in the form the features expect.

  Args:
    key: the example key (used in error messages).
    example: dict with keys frames/subject/type/view/length.
    split: split name (used in error messages).
    frame_size: expected height and width of each frame.

  Returns:
    A new dict: frames as given, strings as `str`, length as `int`.

  Raises:
    InvalidExampleError: naming the offending key and example key.
  """
  where = f'example {key!r} of split {split!r}'
  if not isinstance(example, Mapping):
    raise InvalidExampleError(
        f'{where}: expected a dict with keys {list(EXAMPLE_KEYS)}, got '
        f'{type(example).__name__}')
  missing = [k for k in EXAMPLE_KEYS if k not in example]
  unknown = sorted(set(example) - set(EXAMPLE_KEYS))
  if missing or unknown:
    raise InvalidExampleError(
        f'{where}: missing keys {missing}, unknown keys {unknown}; expected '
        f'exactly {list(EXAMPLE_KEYS)}')
  frames = example['frames']
  if isinstance(frames, EncodedFrames):
    if not isinstance(frames.data, bytes) or not frames.data:
      raise InvalidExampleError(
          f"{where}: EncodedFrames 'data' must be non-empty bytes")
    shape = tuple(frames.shape)
  elif isinstance(frames, np.ndarray):
    if frames.dtype != np.uint8:
      raise InvalidExampleError(
          f"{where}: 'frames' must have dtype uint8, got {frames.dtype}")
    shape = frames.shape
  else:
    raise InvalidExampleError(
        f"{where}: 'frames' must be a numpy array or EncodedFrames, got "
        f'{type(frames).__name__}')
  if (len(shape) != 3 or shape[0] < 1
      or tuple(shape[1:]) != (frame_size, frame_size)):
    raise InvalidExampleError(
        f"{where}: 'frames' must have shape [T, {frame_size}, {frame_size}] "
        f'with T >= 1, got {list(shape)}')
  length = example['length']
  if (isinstance(length, (bool, np.bool_))
      or not isinstance(length, (int, np.integer))):
    raise InvalidExampleError(
        f"{where}: 'length' must be an int, got {type(length).__name__}")
  if int(length) != shape[0]:
    raise InvalidExampleError(
        f"{where}: 'length' is {int(length)} but 'frames' has "
        f'{shape[0]} frames')
  out = {'frames': frames, 'length': int(length)}
  for k in TEXT_KEYS:
    value = example[k]
    if isinstance(value, bytes):
      value = value.decode('utf-8')
    if not isinstance(value, str) or not value:
      raise InvalidExampleError(
          f'{where}: {k!r} must be a non-empty string, got {example[k]!r}')
    out[k] = value
  return out


def accepting_encoded_frames(
    features: tfds.features.FeaturesDict) -> tfds.features.FeaturesDict:
  """Lets the 'frames' feature of `features` take `EncodedFrames`.

  Only this instance of the features changes (the stored description is
  still a plain zlib Tensor): `EncodedFrames` becomes what the Tensor's own
  encoding returns for the array (its compressed bytes, with the shape only
  where more than one dimension is unknown); arrays are encoded as before.
  """
  feature = features['frames']
  encode_array = feature.encode_example
  # As in Tensor.encode_example: the shape is stored too only when more than
  # one dimension is unknown (not for [None, size, size]).
  with_shape = bool(getattr(feature, '_dynamic_shape', False))

  def encode_example(value):
    if isinstance(value, EncodedFrames):
      if with_shape:
        return {'value': value.data, 'shape': tuple(value.shape)}
      return value.data
    return encode_array(value)

  feature.encode_example = encode_example
  return features


def _serialize_deterministically(self: example_serializer.ExampleSerializer,
                                 example: Any) -> bytes:
  """`ExampleSerializer.serialize_example` with sorted map entries."""
  return self.get_tf_example(example).SerializeToString(deterministic=True)


@contextlib.contextmanager
def deterministic_serialization() -> Iterator[None]:
  """Makes TFDS serialise every example deterministically while active.

  A `tf.train.Example` keeps its features in a protobuf map, and protobuf
  writes map entries in the order of its hash table, which is seeded anew
  in every process: the same example gives different bytes in two runs.
  Deterministic serialisation writes the entries sorted by feature name.
  TFDS creates its `ExampleSerializer` inside the split builder, with no
  way to pass one in, so the method of the class is replaced while the
  context is active (writers in other threads of the process are affected
  too; gait datasets are written by one writer per process).
  """
  cls = example_serializer.ExampleSerializer
  previous = cls.__dict__['serialize_example']
  cls.serialize_example = _serialize_deterministically
  try:
    yield
  finally:
    cls.serialize_example = previous
