"""PyTorch interop: OpenGait checkpoints to Flax variables, numeric parity.

The only package that uses PyTorch; it imports it inside functions, so
`import gait_jax` works without it.

  convert   OpenGait state dicts -> Flax variables (`load_opengait_checkpoint`)
  parity    PyTorch-vs-Flax output comparison (`parity_report`)
  train_parity  both trained step by step on the same batches
                (`train_parity_report`); the PyTorch side is
                `torch_trainer` with its own loss (`torch_losses`) and
                optimizer (`torch_optim`)

Usage:

  from gait_jax import torch_compat
  config = torch_compat.resolve_model_config(path, 'baseline',
                                             {'variant': 'casia_b',
                                              'num_classes': -1})
  variables = torch_compat.load_opengait_checkpoint(path, 'baseline', config)
"""

from gait_jax.torch_compat.convert import CheckpointMismatchError
from gait_jax.torch_compat.convert import CLASSIFIER_KEYS
from gait_jax.torch_compat.convert import checkpoint_num_classes
from gait_jax.torch_compat.convert import expected_variables
from gait_jax.torch_compat.convert import LAYOUTS
from gait_jax.torch_compat.convert import load_opengait_checkpoint
from gait_jax.torch_compat.convert import opengait_state_dict_shapes
from gait_jax.torch_compat.convert import read_state_dict
from gait_jax.torch_compat.convert import resolve_model_config
from gait_jax.torch_compat.parity import deterministic_silhouettes
from gait_jax.torch_compat.parity import format_parity_report
from gait_jax.torch_compat.parity import parity_report
from gait_jax.torch_compat.train_parity import train_parity_report
from gait_jax.torch_compat.train_parity import tree_rel_diff

__all__ = [
    'CLASSIFIER_KEYS', 'CheckpointMismatchError', 'LAYOUTS',
    'checkpoint_num_classes', 'deterministic_silhouettes',
    'expected_variables', 'format_parity_report', 'load_opengait_checkpoint',
    'opengait_state_dict_shapes', 'parity_report', 'read_state_dict',
    'resolve_model_config', 'train_parity_report', 'tree_rel_diff',
]
