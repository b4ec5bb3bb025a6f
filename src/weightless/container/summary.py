"""A JSON-ready description of a container (used by ``weightless inspect``)."""

from __future__ import annotations

from typing import Any

from .format import Container

__all__ = ["summarize_container", "summarize_params"]

_MAX_LIST = 8
_MAX_TEXT = 80


def summarize_params(value: Any) -> Any:
    """Return ``value`` with long lists replaced by ``"<list of N items>"`` and long strings cut.

    Scalars and short lists are kept as they are, so small parameters (t, k, seeds) show in
    full while a 256-entry codebook becomes one line.
    """
    if isinstance(value, dict):
        return {k: summarize_params(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > _MAX_LIST:
            return f"<list of {len(value)} items>"
        return [summarize_params(v) for v in value]
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[: _MAX_TEXT - 3] + "..."
    return value


def summarize_container(container: Container, *, full_params: bool = False) -> dict[str, Any]:
    """Return a JSON-serialisable description of ``container``.

    Keys: ``format_version`` ("major.minor"), ``file_bytes``, ``header_bytes`` (``H`` of the
    preamble), ``payload_bytes`` (sum of the records' payloads), ``overhead_bytes``
    (``file_bytes - payload_bytes``: preamble, header, checksums; None for a container not read
    from a file), ``overhead_percent`` (of ``file_bytes``, 2 decimals), ``num_records``,
    ``metadata``, ``encodings`` (per encoding: number of records, payload bytes, elements) and
    ``records`` (per record, in file order: name, encoding, dtype, shape, numel, payload_bytes,
    bits_per_element, params). ``params`` is summarised with :func:`summarize_params` unless
    ``full_params``.
    """
    records = []
    encodings: dict[str, dict[str, int]] = {}
    for r in container.records:
        numel = r.numel
        records.append(
            {
                "name": r.name,
                "encoding": r.encoding,
                "dtype": r.dtype,
                "shape": list(r.shape),
                "numel": numel,
                "payload_bytes": len(r.payload),
                "bits_per_element": round(8 * len(r.payload) / numel, 4) if numel else None,
                "params": r.params if full_params else summarize_params(r.params),
            }
        )
        agg = encodings.setdefault(r.encoding, {"records": 0, "payload_bytes": 0, "numel": 0})
        agg["records"] += 1
        agg["payload_bytes"] += len(r.payload)
        agg["numel"] += numel
    overhead = container.overhead_bytes
    return {
        "format_version": f"{container.version[0]}.{container.version[1]}",
        "file_bytes": container.file_bytes,
        "header_bytes": container.header_bytes,
        "payload_bytes": container.payload_bytes,
        "overhead_bytes": overhead,
        "overhead_percent": (
            round(100.0 * overhead / container.file_bytes, 2) if overhead is not None else None
        ),
        "num_records": len(container.records),
        "metadata": container.metadata,
        "encodings": dict(sorted(encodings.items())),
        "records": records,
    }
