"""Checkers of the ``.wl`` header's fields, the limits they enforce and the strict JSON parser
(:mod:`.format` re-exports every name). Each checker takes the value, where it sits (for the
message) and the error type to raise, and returns the checked value: the writer runs them with
:class:`~weightless.errors.InputError` on what it is about to write, the reader with
:class:`~weightless.errors.FieldError` on what it read (through the tables of :mod:`.layout`)."""

from __future__ import annotations

import json
import math
import numbers
import re
from typing import Any, Callable, Mapping

from ..errors import FieldError, WeightlessError

#: Bytes of the blake2b digest that ends a file.
CHECKSUM_BYTES = 16
MAX_NDIM = 32
MAX_ELEMENTS = 2**40
MAX_NAME_CHARS = 1024
MAX_JSON_DEPTH = 64
#: JSON integers must fit in int64 or uint64 (seeds may be full 64-bit words).
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1

#: Logical dtypes a record may declare (the dtype of the decoded tensor).
DTYPES = frozenset(
    {
        "float64", "float32", "float16", "bfloat16",
        "int64", "int32", "int16", "int8",
        "uint64", "uint32", "uint16", "uint8",
        "bool",
    }
)

#: Encoding names: lower case letters, digits and ``._+-``, 1 to 64 characters.
ENCODING_PATTERN = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ErrorType = type[WeightlessError]
#: A checker: (value, where, error type) -> the checked value.
Checker = Callable[[Any, str, ErrorType], Any]


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _check_text(value: Any, where: str, err: ErrorType) -> str:
    if not isinstance(value, str):
        raise err(f"{where} is {_describe(value)}; expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise err(f"{where} contains a lone surrogate and cannot be encoded as UTF-8") from None
    return str(value)


def canonical_json(value: Any, where: str, err: ErrorType, depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data (dict/list/str/int/float/bool/None), checked.

    Tuples become lists; numbers.Integral and numbers.Real (e.g. numpy scalars) become int and
    float. Raises ``err`` for anything else, non-string keys, non-finite floats, integers outside
    [-2**63, 2**64), strings that are not valid UTF-8, and nesting deeper than MAX_JSON_DEPTH.
    """
    if depth > MAX_JSON_DEPTH:
        raise err(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels; expected flatter JSON")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return _check_text(value, where, err)
    if isinstance(value, numbers.Integral) and not _is_bool_like(value):
        v = int(value)
        if not MIN_JSON_INT <= v <= MAX_JSON_INT:
            raise err(f"{where} is the integer {v}; expected one in [-2**63, 2**64)")
        return v
    if isinstance(value, numbers.Real) and not _is_bool_like(value):
        x = float(value)
        if not math.isfinite(x):
            raise err(f"{where} is {x}; expected a finite number (JSON has no NaN or infinity)")
        return x
    if isinstance(value, (list, tuple)):
        return [canonical_json(v, f"{where}[{i}]", err, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise err(f"{where} has the key {_describe(k)}; expected string keys")
            _check_text(k, f"{where} key", err)
            out[str(k)] = canonical_json(v, f"{where}.{k}", err, depth + 1)
        return out
    raise err(
        f"{where} is {_describe(value)}; expected JSON data (None, bool, int, float, str, "
        "list, dict); convert arrays with .tolist() and numpy booleans with bool()"
    )


def _is_bool_like(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")


def check_json_object(value: Any, where: str, err: ErrorType) -> dict:
    """A JSON object (dict with string keys), returned in canonical form."""
    if not isinstance(value, Mapping):
        raise err(f"{where} is {_describe(value)}; expected a JSON object (dict)")
    return canonical_json(value, where, err)


def check_name(value: Any, where: str, err: ErrorType) -> str:
    """A record name: 1 to MAX_NAME_CHARS characters, no control characters."""
    value = _check_text(value, where, err)
    if not value:
        raise err(f"{where} is empty; expected a non-empty name such as 'fc1.weight'")
    if len(value) > MAX_NAME_CHARS:
        raise err(f"{where} has {len(value)} characters; expected at most {MAX_NAME_CHARS}")
    if _CONTROL.search(value):
        raise err(f"{where} {value!r} contains a control character; expected printable text")
    return value


def check_encoding(value: Any, where: str, err: ErrorType) -> str:
    """An encoding name matching ENCODING_PATTERN, e.g. 'dense-f32' or 'bloomier-ans'."""
    value = _check_text(value, where, err)
    if not ENCODING_PATTERN.fullmatch(value):
        raise err(
            f"{where} is {value!r}; expected 1-64 characters of a-z, 0-9 and '._+-' starting "
            "with a letter or digit, e.g. 'dense-f32'"
        )
    return value


def check_dtype(value: Any, where: str, err: ErrorType) -> str:
    """A dtype name from DTYPES."""
    value = _check_text(value, where, err)
    if value not in DTYPES:
        raise err(f"{where} is {value!r}; expected one of {', '.join(sorted(DTYPES))}")
    return value


def _check_index(value: Any, where: str, err: ErrorType, lo: int, hi: int) -> int:
    if _is_bool_like(value) or not isinstance(value, numbers.Integral):
        raise err(f"{where} is {_describe(value)}; expected an integer")
    v = int(value)
    if not lo <= v <= hi:
        raise err(f"{where} is {v}; expected an integer in [{lo}, {hi}]")
    return v


def check_shape(value: Any, where: str, err: ErrorType) -> tuple[int, ...]:
    """A shape: at most MAX_NDIM non-negative ints whose product is at most MAX_ELEMENTS."""
    if not isinstance(value, (list, tuple)):
        raise err(f"{where} is {_describe(value)}; expected a list of non-negative integers")
    if len(value) > MAX_NDIM:
        raise err(f"{where} has {len(value)} dimensions; expected at most {MAX_NDIM}")
    dims = tuple(
        _check_index(d, f"{where}[{i}]", err, 0, MAX_ELEMENTS) for i, d in enumerate(value)
    )
    n = 1
    for d in dims:
        n *= d
        if n > MAX_ELEMENTS:
            raise err(f"{where} {list(dims)} has more than {MAX_ELEMENTS} (2**40) elements")
    return dims


def compact_json(value: Any) -> bytes:
    """The canonical JSON bytes of metadata and params: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_json(text: bytes, where: str) -> Any:
    """Parse UTF-8 JSON text with the value rules of docs/FORMAT.md ("JSON values").

    Raises:
        FieldError: not UTF-8, not JSON, a repeated key, NaN or infinity, a number that
            overflows a double, an integer literal of more than 21 characters, nesting too deep
            for the parser (``where`` names the text in the message).
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError(
            f"{where} is not valid UTF-8 (byte {exc.start} of it); expected UTF-8 JSON"
        ) from None

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                raise FieldError(
                    f"{where} repeats the key {k[:60]!r} in one object; expected unique keys"
                )
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise FieldError(f"{where} contains {name}; expected finite numbers only")

    def parse_float(s: str) -> float:
        v = float(s)
        if not math.isfinite(v):
            raise FieldError(f"{where} contains the number {s[:40]} which overflows a double")
        return v

    def parse_int(s: str) -> int:
        if len(s) > 21:  # longer than any int64/uint64
            raise FieldError(
                f"{where} contains an integer of {len(s)} digits; "
                "expected one in [-2**63, 2**64)"
            )
        return int(s)

    try:
        return json.loads(
            decoded,
            object_pairs_hook=pairs,
            parse_constant=constant,
            parse_float=parse_float,
            parse_int=parse_int,
        )
    except FieldError:
        raise
    except RecursionError:
        raise FieldError(
            f"{where}: the JSON is nested too deeply to parse; expected at most 64 levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise FieldError(f"{where} is not valid JSON: {exc}") from None
