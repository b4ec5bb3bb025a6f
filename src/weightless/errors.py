"""The one exception hierarchy of weightless.

Every error the library raises on purpose derives from :class:`WeightlessError`, so callers can
catch everything of ours with one ``except`` clause. Errors caused by the caller's input also
derive from :class:`ValueError`; errors in files derive from :class:`FormatError`.

Messages say what was received, what was expected, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "WeightlessError",
    "InputError",
    "ConstructionError",
    "FormatError",
    "BadMagicError",
    "UnsupportedVersionError",
    "HeaderTooLargeError",
    "TruncatedError",
    "OffsetError",
    "ChecksumError",
    "FieldError",
    "LimitError",
    "DataError",
]


class WeightlessError(Exception):
    """Base class of every error raised on purpose by weightless."""


class InputError(WeightlessError, ValueError):
    """An argument is invalid (wrong type, out of range, inconsistent with another argument)."""


class ConstructionError(WeightlessError):
    """A filter could not be built, e.g. every allowed seed failed to peel or solve."""


class BudgetError(WeightlessError):
    """No model within the accuracy budget: even the least lossy one the pipeline can make is
    over it on the confirmation data. ``report`` holds the figures (JSON-ready dict)."""

    def __init__(self, message: str, *, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class DataError(WeightlessError):
    """A data set is missing, altered (wrong checksum) or malformed."""


class FormatError(WeightlessError):
    """Bytes that should hold a weightless structure are corrupt, truncated or unsupported."""


class BadMagicError(FormatError):
    """The bytes do not start with the expected magic number."""


class UnsupportedVersionError(FormatError):
    """The format version is newer (or older) than this reader supports."""


class HeaderTooLargeError(FormatError):
    """A declared header length exceeds the reader's cap."""


class TruncatedError(FormatError):
    """The data ends before a declared structure ends."""


class OffsetError(FormatError):
    """Offsets are overlapping, non-contiguous or outside the data."""


class ChecksumError(FormatError):
    """A stored checksum does not match the bytes it covers."""


class FieldError(FormatError):
    """A header field is missing, of the wrong type, or inconsistent with other fields."""


class LimitError(FormatError):
    """A file declares more than a configured limit allows (see :class:`weightless.io.limits.Limits`);
    ``limit`` is the name of the exceeded field, e.g. ``"max_tensor_bytes"``."""

    def __init__(self, message: str, *, limit: str = "") -> None:
        super().__init__(message)
        self.limit = limit
