"""Model-agnostic layer selection: which weight tensors to simplify and encode, and how.

A :class:`LayerSelect` says "all Linear and Conv weights (optionally matching a name pattern,
optionally only the largest ones holding a share of the weights) at X% nonzero with k shared
values", with per-layer overrides. :meth:`LayerSelect.pick` resolves it against a model.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InputError
from .cluster import INITS

__all__ = ["LayerSelect", "METHODS"]

#: Pruning methods.
METHODS = ("magnitude", "dns")
_OVERRIDE_KEYS = {"nonzero", "k", "method"}


@dataclass(frozen=True)
class LayerSelect:
    """A rule that picks weight tensors of any model.

    Attributes:
        types: module class names whose ``weight`` is selected (e.g. "Linear", "Conv2d").
        pattern: optional glob on the tensor name (e.g. "features.*.weight"); None: any.
        largest_share: keep only the largest selected tensors that together hold at least
            this share (0, 1] of the selected weights (None: all selected).
        min_size: skip tensors with fewer elements.
        nonzero: fraction of weights kept, for every selected tensor.
        k: shared values per selected tensor (at most the number of weights it keeps).
        method: "magnitude" or "dns".
        init: k-means initialisation.
        overrides: tensor name -> {"nonzero": ..., "k": ..., "method": ...} for single layers.
    """

    types: tuple[str, ...] = ("Linear", "Conv1d", "Conv2d", "Conv3d")
    pattern: str | None = None
    largest_share: float | None = None
    min_size: int = 1
    nonzero: float = 0.1
    k: int = 16
    method: str = "magnitude"
    init: str = "density"
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if not self.types:
            raise InputError("select.types must name at least one module type")
        if self.largest_share is not None and not 0 < self.largest_share <= 1:
            raise InputError(f"largest_share must be in (0, 1], got {self.largest_share}")
        if not 0 < self.nonzero <= 1:
            raise InputError(f"nonzero must be in (0, 1], got {self.nonzero}")
        if not 1 <= self.k <= 32767:
            raise InputError(f"k must be in [1, 32767], got {self.k}")
        if self.method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.init not in INITS:
            raise InputError(f"init must be one of {INITS}, got {self.init!r}")
        for name, o in self.overrides.items():
            bad = set(o) - _OVERRIDE_KEYS
            if bad:
                raise InputError(f"override for {name!r} has unknown keys {sorted(bad)}; allowed: {sorted(_OVERRIDE_KEYS)}")

    def candidates(self, model: Any) -> list[tuple[str, int]]:
        """Return ``(tensor name, numel)`` of every weight the rule's types and pattern match,
        in model order (before ``largest_share`` and overrides)."""
        out = []
        for mod_name, module in model.named_modules():
            if type(module).__name__ not in self.types:
                continue
            w = getattr(module, "weight", None)
            if w is None or w.dim() < 2:
                continue
            name = f"{mod_name}.weight" if mod_name else "weight"
            if self.pattern is not None and not fnmatch.fnmatchcase(name, self.pattern):
                continue
            if w.numel() >= self.min_size:
                out.append((name, int(w.numel())))
        return out

    def pick(self, model: Any) -> list[tuple[str, str, float, int]]:
        """Resolve against ``model``: ``(tensor name, method, nonzero, k)`` per selected layer, in
        model order.

        Raises:
            InputError: invalid rule, an override naming an unselected tensor, or nothing selected.
        """
        self.validate()
        cands = self.candidates(model)
        if self.largest_share is not None and cands:
            total = sum(n for _, n in cands)
            keep: set[str] = set()
            acc = 0
            for name, n in sorted(cands, key=lambda c: (-c[1], c[0])):
                if acc >= self.largest_share * total:
                    break
                keep.add(name)
                acc += n
            cands = [c for c in cands if c[0] in keep]
        names = [n for n, _ in cands]
        unknown = set(self.overrides) - set(names)
        if unknown:
            raise InputError(f"overrides name tensors the selection does not pick: {sorted(unknown)}; picked {names}")
        if not names:
            raise InputError(f"no layer of the model matches types={self.types} pattern={self.pattern!r}")
        out = []
        sizes = dict(cands)
        for n in names:
            o = self.overrides.get(n, {})
            nz = float(o.get("nonzero", self.nonzero))
            keep = max(1, int(round(nz * sizes[n])))
            # a small layer keeps fewer weights than k: one shared value per kept weight at most
            out.append((n, str(o.get("method", self.method)), nz, min(int(o.get("k", self.k)), keep)))
        return out
