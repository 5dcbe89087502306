"""What a protocol is: a named probe/gallery split and the rule that scores it.

A benchmark family module (``casia_b.py``, ``oumvlp.py``, ...) lists its
`Protocol` entries in a module-level ``PROTOCOLS`` tuple; the package
``__init__`` collects the families into the registry. A protocol's ``rule`` is
any function with the `Rule` signature, so a family can use a shared rule
(``rules.single_view_gallery``, ``rules.cross_view_gallery``) or bring its own
(e.g. a probe-list rule with rank-k, mAP and mINP).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gait_jax.evaluation.protocols.results import ProtocolResult


@dataclasses.dataclass(frozen=True)
class EvalSet:
  """Embeddings and labels of every test sequence, in record order.

  Attributes:
    embeddings: float32 [N, parts, channels].
    subjects: [N] str subject ids.
    types: [N] str sequence types ('nm-01', '00', ...).
    views: [N] str views ('090', ...).
  """
  embeddings: np.ndarray
  subjects: np.ndarray
  types: np.ndarray
  views: np.ndarray

  @classmethod
  def build(cls, embeddings: np.ndarray, subjects: Sequence[Any],
            types: Sequence[Any], views: Sequence[Any]) -> 'EvalSet':
    """Checks lengths and converts labels (str or bytes) to str arrays."""
    emb = np.asarray(embeddings, np.float32)
    subj, typ, view = _as_str(subjects), _as_str(types), _as_str(views)
    if not emb.shape[0] == subj.size == typ.size == view.size:
      raise ValueError('embeddings, subjects, types and views must have the '
                       f'same length: {emb.shape[0]}, {subj.size}, '
                       f'{typ.size}, {view.size}')
    return cls(emb, subj, typ, view)


def _as_str(values: Sequence[Any]) -> np.ndarray:
  """Converts labels that may be bytes (TFDS Text) to a str array."""
  return np.asarray([v.decode() if isinstance(v, bytes) else str(v)
                     for v in values])


# rule(protocol, eval_set, *, metric, backend, **options) -> result; the
# options are the protocol's `options` with the caller's overrides applied.
Rule = Callable[..., ProtocolResult]

# roles(protocol, eval_set, **options) -> (is_probe, is_gallery), two bool
# [N] arrays: which test sequences the rule uses as probes and as gallery.
Roles = Callable[..., tuple[np.ndarray, np.ndarray]]


def type_roles(proto: 'Protocol', data: EvalSet,
               **unused_options: Any) -> tuple[np.ndarray, np.ndarray]:
  """Probes: the sequences whose type is in a probe set; gallery: those
  whose type is a gallery type (exact matches)."""
  probe_types = sorted({t for ts in proto.probe_sets.values() for t in ts})
  return (np.isin(data.types, probe_types),
          np.isin(data.types, list(proto.gallery_types)))


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Probe/gallery split of one benchmark and the rule that scores it.

  Attributes:
    name: registry name.
    rule: the scoring function (see `Rule`).
    probe_sets: probe set name -> sequence types in that set.
    gallery_types: sequence types forming the gallery.
    options: allowed keyword options of the rule and their defaults.
    family: the benchmark family module that defines it.
    outputs: optional ``outputs(eval_set, workdir, *, metric, backend) ->
      [paths]`` writing the protocol's files besides the report (e.g. the
      GREW submission CSV); it returns [] when the test set has nothing to
      write.
    roles: the function telling which sequences are probes and gallery
      (`Roles`; e.g. to corrupt one side only), by default `type_roles`.
  """
  name: str
  rule: Rule
  probe_sets: Mapping[str, tuple[str, ...]]
  gallery_types: tuple[str, ...]
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  family: str = ''
  outputs: Callable[..., list[str]] | None = None
  roles: Roles = type_roles

  def sequence_roles(self, data: EvalSet, options: Mapping[str, Any]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(is_probe, is_gallery) bool [N] of ``data`` under ``options``."""
    return self.roles(self, data, **self.check_options(options))

  def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults with ``options`` applied; a ValueError names the valid
    options when one is unknown."""
    unknown = set(options) - set(self.options)
    if unknown:
      raise ValueError(f'Unknown options {sorted(unknown)} for protocol '
                       f'{self.name!r}; valid: {sorted(self.options)}')
    return {**self.options, **options}
