"""Gait data: random-access sources, stateless sampling, grain pipelines."""

from gait_jax.data.sampling import FRAME_SAMPLERS
from gait_jax.data.sampling import PKSampler
from gait_jax.data.sampling import host_slice
from gait_jax.data.sampling import sample_frames
from gait_jax.data.source import GaitSource
from gait_jax.data.source import read_metadata
