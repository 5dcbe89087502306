"""Gait recognition models and their registry.

Usage:

  model = get_model('gaitset', variant='tiny', num_classes=8)
  variables = model.init(rng, sils)
  outputs = model.apply(variables, sils, mask=mask, train=False)

Every model maps silhouettes `[n, s, 64, 44]` in [0, 1] and an optional frame
mask `[n, s]` (True = real frame) to a dict with `'embeddings'`
`[n, parts, channels]` and, for models with a classifier, `'logits'`
`[n, classes, parts]`.

Every model takes `ops` ('auto', 'reference' or 'cpu') and `conv_kernel_grad`
('auto', 'taps' or 'xla'), which choose the implementation of its
convolutions and pools without changing its parameters (see
`gait_jax.models.ops`), and `remat` ('none', 'blocks' or 'dots_saveable'),
which rematerialises the backbone's blocks in training, again without
changing the parameters (see `gait_jax.models.remat`).
"""

import dataclasses
from typing import Any

import flax.linen as nn

from gait_jax.models import baseline
from gait_jax.models import deepgaitv2
from gait_jax.models import gaitgl
from gait_jax.models import gaitpart
from gait_jax.models import gaitset
from gait_jax.models import ops as ops_lib
from gait_jax.models import remat as remat_lib
from gait_jax.models import swingait
from gait_jax.models import trackletgait

remat_compiler_options = remat_lib.compiler_options

_REGISTRY: dict[str, tuple[type[nn.Module], dict[str, dict[str, Any]]]] = {
    'gaitset': (gaitset.GaitSet, gaitset.VARIANTS),
    'gaitpart': (gaitpart.GaitPart, gaitpart.VARIANTS),
    'gaitgl': (gaitgl.GaitGL, gaitgl.VARIANTS),
    'baseline': (baseline.Baseline, baseline.BASELINE_VARIANTS),
    'gaitbase': (baseline.GaitBase, baseline.GAITBASE_VARIANTS),
    'deepgaitv2': (deepgaitv2.DeepGaitV2, deepgaitv2.VARIANTS),
    'swingait': (swingait.SwinGait, swingait.VARIANTS),
    'trackletgait': (trackletgait.TrackletGait, trackletgait.VARIANTS),
}

# Names of the dataclass fields that are Flax plumbing, not configuration.
_RESERVED = frozenset({'parent', 'name'})


def model_names() -> list[str]:
  """Returns the registered model names."""
  return sorted(_REGISTRY)


def variant_names(name: str) -> list[str]:
  """Returns the variants of model `name`."""
  return list(_lookup(name)[1])


def config_keys(name: str) -> list[str]:
  """Returns the configuration keys model `name` accepts as overrides."""
  cls = _lookup(name)[0]
  return [f.name for f in dataclasses.fields(cls)
          if f.name not in _RESERVED]


def _lookup(name: str) -> tuple[type[nn.Module], dict[str, dict[str, Any]]]:
  if name not in _REGISTRY:
    raise ValueError(
        f'Unknown model {name!r}; valid names: {", ".join(model_names())}.')
  return _REGISTRY[name]


def get_model(name: str, variant: str = 'casia_b',
              **model_config: Any) -> nn.Module:
  """Builds a registered model.

  Args:
    name: registry name, e.g. 'gaitset'.
    variant: 'casia_b', 'oumvlp' or 'tiny' (very small, for tests/demos);
      DeepGaitV2 also has 'gait3d', 'grew', 'ccpg' and 'sustech1k'
      (`variant_names(name)`).
    **model_config: overrides of the variant's attributes (e.g. num_classes,
      axis_name, dtype, ops); see `config_keys(name)`.

  Returns:
    An unbound Flax module.

  Raises:
    ValueError: unknown name, variant, `ops`, `conv_kernel_grad` or `remat`
      value.
    TypeError: an override key the model does not accept.
  """
  cls, variants = _lookup(name)
  if variant not in variants:
    raise ValueError(f'Unknown variant {variant!r} of model {name!r}; valid '
                     f'variants: {", ".join(variants)}.')
  valid = config_keys(name)
  unknown = sorted(set(model_config) - set(valid))
  if unknown:
    raise TypeError(f'Unknown config key(s) {", ".join(unknown)} for model '
                    f'{name!r}; valid keys: {", ".join(valid)}.')
  config = dict(variants[variant])
  config.update(model_config)
  model = cls(**config)
  ops_lib.check_ops(model.ops)
  ops_lib.check_kernel_grad(model.conv_kernel_grad)
  remat_lib.check_remat(model.remat)
  return model
