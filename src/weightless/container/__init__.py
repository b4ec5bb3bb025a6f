"""The ``.wl`` container: named records (opaque encoded payloads) plus JSON metadata in one file.

The byte layout is specified in docs/FORMAT.md and declared once in
:mod:`weightless.container.layout` (one table of fields that the writer packs and the reader
unpacks). Format version 2 (a compact binary header and one checksum over the whole file) is the
only one written and read. Writing is deterministic and atomic; reading validates every length,
field and checksum before use and raises :class:`~weightless.errors.FormatError` subclasses.
Needs only the standard library.

>>> from weightless.container import Record, container_to_bytes, container_from_bytes
>>> rec = Record("fc1.bias", "raw", (2,), "uint8", {}, b"\\x01\\x02")
>>> data = container_to_bytes([rec], {"model": "demo"})
>>> container_from_bytes(data).record("fc1.bias") == rec
True
"""

from __future__ import annotations

from .format import (
    DTYPES,
    FORMAT_VERSION,
    MAGIC,
    MAX_ELEMENTS,
    MAX_HEADER_BYTES,
    SUPPORTED_MAJORS,
    Container,
    Record,
)
from .reader import container_from_bytes, read_container
from .summary import summarize_container, summarize_params
from .writer import container_to_bytes, write_container

__all__ = [
    "Record",
    "Container",
    "write_container",
    "read_container",
    "container_to_bytes",
    "container_from_bytes",
    "summarize_container",
    "summarize_params",
    "MAGIC",
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "MAX_ELEMENTS",
    "DTYPES",
    "SUPPORTED_MAJORS",
]
