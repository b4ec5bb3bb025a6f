"""The public Bloomier filter: an immutable map from positions to cluster indices.

A filter stores a map from ``n`` distinct flat positions (keys in ``[0, size)``) to cluster
indices in ``[0, k)``, in tables of ``t``-bit cells. Querying any position returns its value
if it is a key, and for a non-key "empty" except with probability ``k / 2**t`` (a false
positive, a uniformly random index in ``[0, k)``).

The work is split by job: :mod:`.sharding` (which shard answers which position),
:mod:`.build` (checks, shards, seed retries), :mod:`.wire` (the byte format), and the
constructions (:mod:`.paper`, :mod:`.compact`, each with its numba kernels) that solve and
decode tables through the :class:`~weightless.filters.base.Construction` protocol. This module
holds the filter class, which validates queries and hands whole-layer decodes to its
construction, in up to ``threads`` threads (the output never depends on it).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import FieldError, FormatError, InputError
from .base import Construction, Shard, frozen, get_construction
from .parallel import resolve_threads
from .params import MAX_CELLS, MAX_SHARDS, MAX_SIZE, as_int_array
from .sharding import BLOCK_BITS, BlockPlan, block_plan, recommended_shards, shard_of_positions
from .wire import HEADER_SIZE, MAGIC, SHARD_RECORD_SIZE, VERSION, encode, parse, validate_params

__all__ = [
    "BloomierFilter",
    "Shard",
    "recommended_shards",
    "MAGIC",
    "VERSION",
    "BLOCK_BITS",
    "shard_of_positions",
    "HEADER_SIZE",
    "SHARD_RECORD_SIZE",
    "MAX_SHARDS",
    "MAX_CELLS",
    "MAX_SIZE",
]


class BloomierFilter:
    """An immutable Bloomier filter over positions ``[0, size)``; build with :func:`build`,
    load with :meth:`from_bytes` or :meth:`from_parts`.

    Attributes: ``n`` (keys), ``k``, ``t``, ``size``, ``seed`` (base seed), ``construction``
    (name), ``shards`` (tuple of :class:`Shard`), ``block_bits``.
    """

    def __init__(
        self,
        *,
        k: int,
        t: int,
        size: int,
        seed: int,
        construction: str,
        shards: Sequence[Shard],
        block_bits: int = BLOCK_BITS,
    ) -> None:
        self.k = int(k)
        self.t = int(t)
        self.size = int(size)
        self.seed = int(seed)
        self.block_bits = int(block_bits)
        self._con: Construction = get_construction(construction)
        self.construction: str = self._con.name
        self.shards: tuple[Shard, ...] = tuple(shards)
        self.n = int(sum(s.n for s in self.shards))
        self._plan: BlockPlan | None = None
        self._tables: dict[bool | None, Any] = {}
        self._bytes: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"BloomierFilter(n={self.n}, k={self.k}, t={self.t}, size={self.size}, m={self.m}, "
            f"shards={len(self.shards)}, construction={self.construction!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BloomierFilter):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    @property
    def m(self) -> int:
        """Total number of cells over all shards."""
        return int(sum(s.m for s in self.shards))

    # ---- internal helpers
    def plan(self) -> BlockPlan:
        """The :class:`~weightless.filters.sharding.BlockPlan` of this filter (cached)."""
        if self._plan is None:
            self._plan = block_plan(self.size, self.block_bits, len(self.shards), self.seed)
        return self._plan

    def _prepared(self, use_numba: bool | None) -> Any:
        """The construction's decode-ready tables (cached per numba choice)."""
        key = bool(use_numba) if use_numba is not None else None
        if key not in self._tables:
            self._tables[key] = self._con.prepare(self.shards, self.t, use_numba=use_numba)
        return self._tables[key]

    def _raw(self, positions: np.ndarray, use_numba: bool | None) -> np.ndarray:
        """Raw t-bit words (uint16) for int64 positions already validated."""
        if len(self.shards) == 1:
            sh = self.shards[0]
            return self._con.lookup(sh.cells, sh.aux, self.t, sh.seed, positions, use_numba=use_numba)
        sid = shard_of_positions(positions, len(self.shards), self.seed, self.block_bits)
        out = np.empty(positions.shape[0], np.uint16)
        order = np.argsort(sid, kind="stable")
        bounds = np.searchsorted(sid[order], np.arange(len(self.shards) + 1))
        for s, sh in enumerate(self.shards):
            sel = order[bounds[s] : bounds[s + 1]]
            if sel.size:
                out[sel] = self._con.lookup(sh.cells, sh.aux, self.t, sh.seed, positions[sel], use_numba=use_numba)
        return out

    def _decode_lut(self, lut: np.ndarray, out: np.ndarray, use_numba: bool | None, threads: int | None) -> None:
        """out[p] = lut[raw(p)] for every position p (lut has 2**t entries)."""
        self._con.decode_layer(
            self._prepared(use_numba), self.t, self.plan(), lut, out, use_numba=use_numba, threads=resolve_threads(threads)
        )

    # ---- public queries
    def query(self, positions: Any, *, use_numba: bool | None = None) -> np.ndarray:
        """Return the stored value (int64) of each position, or -1 where the filter answers empty.

        Raises:
            InputError: ``positions`` is not an integer array or has values outside ``[0, size)``.
        """
        pos = np.asarray(positions)
        shape = pos.shape
        pos = as_int_array("positions", pos.reshape(-1))
        if pos.size and (int(pos.min()) < 0 or int(pos.max()) >= self.size):
            raise InputError(f"positions must lie in [0, size) = [0, {self.size}); got [{pos.min()}, {pos.max()}]")
        raw = self._raw(pos, use_numba).astype(np.int64)
        raw[raw >= self.k] = -1
        return raw.reshape(shape)

    def _check_shape(self, shape: Any) -> tuple[int, ...]:
        try:
            shp = tuple(int(d) for d in shape)
        except TypeError:
            shp = (int(shape),)
        if any(d < 0 for d in shp) or math.prod(shp) != self.size:
            raise InputError(f"shape {shp} has {math.prod(shp)} positions, the filter has size {self.size}")
        return shp

    def reconstruct(
        self,
        shape: Any,
        codebook: Any,
        out: np.ndarray | None = None,
        *,
        use_numba: bool | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """Decode the whole layer: ``codebook[value]`` where the filter answers, 0 elsewhere.

        Args:
            shape: the layer's shape; its product must equal ``size``.
            codebook: ``k`` centroids (cast to float32).
            out: optional C-contiguous float32 array of ``shape`` to write into.
            threads: threads to decode with (None: the cores available); same output for any.
        Returns:
            A float32 array of ``shape`` (``out`` if given). The numba path writes straight into
            it; the numpy path works in steps of at most 65536 positions, so peak memory stays
            close to the output size.
        Raises:
            InputError: wrong shape, codebook length, ``out`` or ``threads``.
        """
        shp = self._check_shape(shape)
        lut = self.codebook_lut(codebook)
        if out is None:
            out = np.empty(shp, dtype=np.float32)  # numpy advises huge pages for large arrays
        elif (
            not isinstance(out, np.ndarray)
            or out.dtype != np.float32
            or out.shape != shp
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise InputError(f"out must be a writeable C-contiguous float32 array of shape {shp}")
        self._decode_lut(lut, out.reshape(-1), use_numba, threads)
        return out

    def codebook_lut(self, codebook: Any) -> np.ndarray:
        """The ``2**t``-entry float32 table a decode looks raw words up in: ``codebook[r]`` for
        ``r < k``, 0 above.

        Raises:
            InputError: the codebook does not have ``k`` entries.
        """
        cb = np.asarray(codebook, dtype=np.float32).reshape(-1)
        if cb.shape[0] != self.k:
            raise InputError(f"codebook must have k = {self.k} entries, got {cb.shape[0]}")
        lut = np.zeros(1 << self.t, dtype=np.float32)
        lut[: self.k] = cb
        return lut

    def reconstruct_indices(self, shape: Any, *, use_numba: bool | None = None, threads: int | None = None) -> np.ndarray:
        """Decode the whole layer as cluster indices: int16 array of ``shape``, -1 where empty
        (``threads`` as in :meth:`reconstruct`).

        Raises:
            InputError: the product of ``shape`` differs from ``size``, or bad ``threads``.
        """
        shp = self._check_shape(shape)
        out = np.empty(shp, dtype=np.int16)
        lut = np.full(1 << self.t, -1, dtype=np.int16)
        lut[: self.k] = np.arange(self.k, dtype=np.int16)
        self._decode_lut(lut, out.reshape(-1), use_numba, threads)
        return out

    def count_false_positives(self, *, use_numba: bool | None = None, threads: int | None = None) -> int:
        """Return the number of non-key positions the filter answers with a value
        (all positions answered with a value, minus ``n``); counted in ``threads`` threads
        (None: the cores available), same result for any."""
        total = self._con.count_below(
            self._prepared(use_numba), self.t, self.plan(), self.k, use_numba=use_numba, threads=resolve_threads(threads)
        )
        return int(total) - self.n

    # ---- serialization
    def params(self) -> dict[str, Any]:
        """Every parameter needed to decode, without the cells (JSON-able)."""
        return {
            "format": "weightless-bloomier",
            "version": VERSION,
            "construction": self.construction,
            "construction_code": int(self._con.code),
            "k": self.k,
            "t": self.t,
            "size": self.size,
            "n": self.n,
            "seed": self.seed,
            "block_bits": self.block_bits,
            "shards": [{"n": s.n, "m": s.m, "seed": s.seed, "aux_len": int(s.aux.shape[0])} for s in self.shards],
        }

    def header_bytes(self) -> bytes:
        """The serialized header and shard records (everything of :meth:`to_bytes` but the
        cells and aux); for S = 1 it is 64 bytes."""
        return self.to_bytes()[: HEADER_SIZE + SHARD_RECORD_SIZE * len(self.shards)]

    def to_bytes(self) -> bytes:
        """Serialize (see :mod:`weightless.filters.wire`). Same filter => identical bytes."""
        if self._bytes is None:
            self._bytes = encode(
                self._con.code, self.t, self.block_bits, self.k, self.size, self.n, self.seed, self.shards
            )
        return self._bytes

    @property
    def nbytes(self) -> int:
        """``len(self.to_bytes())``."""
        return len(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> "BloomierFilter":
        """Parse bytes written by :meth:`to_bytes`.

        Raises:
            FormatError (a subclass: BadMagicError, UnsupportedVersionError, TruncatedError,
            FieldError, ChecksumError): the bytes are not a valid filter. Every length is
            checked against the data before anything is allocated.
        """
        return cls._parse(data, None)

    @classmethod
    def _parse(cls, data: bytes | bytearray | memoryview, unpacked: Sequence[np.ndarray] | None) -> "BloomierFilter":
        """:meth:`from_bytes`; ``unpacked`` are the shards' cells when the caller packed these
        bytes from them itself (the entropy decoder), which saves unpacking them again."""
        params, cells, aux = parse(data, unpacked)
        f = cls.from_parts(params, cells, aux)
        f._bytes = bytes(data)
        return f

    @classmethod
    def from_parts(cls, params: dict, cells: Sequence[np.ndarray], aux: Sequence[np.ndarray]) -> "BloomierFilter":
        """Rebuild a filter from :meth:`params` and each shard's ``cells`` and ``aux`` arrays.

        The construction's ``validate`` hook checks each shard's ``aux``.

        Raises:
            FieldError: a parameter is missing, of the wrong type or inconsistent, or a cells /
                aux array has the wrong length, dtype or a cell ``>= 2**t``.
            FormatError: the construction's ``validate`` rejects a shard.
        """
        validate_params(params)
        metas = params["shards"]
        if not isinstance(cells, (list, tuple)) or not isinstance(aux, (list, tuple)):
            raise FieldError("cells and aux must be lists of arrays, one per shard")
        if len(cells) != len(metas) or len(aux) != len(metas):
            raise FieldError(f"expected {len(metas)} cells and aux arrays, got {len(cells)} and {len(aux)}")
        t = int(params["t"])
        con = get_construction(params["construction"])
        shards = []
        for i, (meta, c, a) in enumerate(zip(metas, cells, aux)):
            c = np.asarray(c)
            a = np.asarray(a)
            if c.ndim != 1 or c.shape[0] != meta["m"] or (c.size and c.dtype.kind not in "iu"):
                raise FieldError(f"shard {i}: cells must be {meta['m']} integers, got {c.dtype} array of shape {c.shape}")
            if c.size and (int(c.min()) < 0 or int(c.max()) >= (1 << t)):
                raise FieldError(f"shard {i}: cells must lie in [0, 2**{t})")
            if a.ndim != 1 or a.shape[0] != meta["aux_len"] or (a.size and a.dtype != np.uint8):
                raise FieldError(f"shard {i}: aux must be {meta['aux_len']} uint8, got {a.dtype} array of shape {a.shape}")
            sh = Shard(
                n=int(meta["n"]), m=int(meta["m"]), seed=int(meta["seed"]), cells=frozen(c, np.uint16), aux=frozen(a, np.uint8)
            )
            try:
                con.validate(sh.cells, sh.aux, t, sh.n, sh.m)
            except FormatError:
                raise
            except (InputError, ValueError) as exc:
                raise FieldError(f"shard {i}: {exc}") from exc
            shards.append(sh)
        return cls(
            k=int(params["k"]),
            t=t,
            size=int(params["size"]),
            seed=int(params["seed"]),
            construction=str(params["construction"]),
            shards=shards,
            block_bits=int(params.get("block_bits", BLOCK_BITS)),
        )
