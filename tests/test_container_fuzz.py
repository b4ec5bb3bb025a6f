"""Fuzzing the .wl reader: whatever the bytes, only FormatError (or a valid Container) comes out."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightless.container import Container, Record, container_from_bytes, container_to_bytes
from weightless.container.format import MAGIC, ByteReader, write_varint
from weightless.errors import FormatError

# WL_FUZZ_EXAMPLES=20000 for a long local run; the everyday suite stays fast.
FUZZ = settings(deadline=None, max_examples=int(os.environ.get("WL_FUZZ_EXAMPLES", "200")), suppress_health_check=[HealthCheck.too_slow])

RECORDS = [
    Record("a.weight", "bloomier", (4, 5), "float32", {"t": 4, "k": 3, "seeds": [7]}, bytes(range(13))),
    Record("a.bias", "dense-f32", (2,), "float32", {}, b"\x00\x00\x80?\x00\x00\x00@"),
    Record("a.b", "dense", (), "float32", {"stored": "float32"}, b"\x00\x00\x80?"),
    Record("z", "raw", (0,), "uint8", {"stored": "float32"}, b""),
]
VALID = container_to_bytes(RECORDS, {"model": "fuzz", "n": 3})


def parse_or_format_error(data: bytes) -> Container | None:
    """Parse ``data``; any exception other than FormatError fails the test."""
    try:
        return container_from_bytes(data)
    except FormatError as exc:
        assert str(exc)  # every error says something
        return None


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    assert parse_or_format_error(data) is None


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 3), st.integers(0, 2**16 - 1))
def test_random_bytes_after_magic(tail, major, minor):
    assert parse_or_format_error(MAGIC + major.to_bytes(2, "little") + minor.to_bytes(2, "little") + tail) is None


@FUZZ
@given(data=st.data())
def test_bit_flips_are_always_detected(data):
    """Every byte of a file is covered by a length check or the digest: any flip is an error."""
    valid = VALID
    buf = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] ^= 1 << data.draw(st.integers(0, 7))
    if bytes(buf) != valid:
        with pytest.raises(FormatError):
            container_from_bytes(bytes(buf))


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 8)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
)


def apply(buf: bytearray, m) -> None:
    kind, pos = m[0], m[1] % (len(buf) + 1)
    if kind == "insert":
        buf[pos:pos] = m[2]
    elif kind == "delete":
        del buf[pos : pos + m[2]]
    elif pos < len(buf):
        buf[pos] = buf[pos] ^ (1 << m[2]) if kind == "flip" else m[2]


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=5))
def test_random_mutations(mutations):
    buf = bytearray(VALID)
    for m in mutations:
        apply(buf, m)
    result = parse_or_format_error(bytes(buf))
    if bytes(buf) != VALID:
        assert result is None  # lengths and checksums catch every change


# Structure-aware fuzzing: mutate the binary header (and the payload), or put any JSON in the
# metadata and params; fix the lengths and the digest, so the header parser itself sees it.


def split_v2(data: bytes) -> tuple[int, bytes, bytes]:
    """(minor, header, payload) of a valid v2 file."""
    r = ByteReader(data, "test", AssertionError, AssertionError)
    r.pos = 12
    hlen = r.varint("H", 2**63)
    plen = r.varint("P", 2**63)
    return int.from_bytes(data[10:12], "little"), data[r.pos : r.pos + hlen], data[r.pos + hlen : r.pos + hlen + plen]


def forge_v2(header: bytes, payload: bytes, minor: int = 0) -> bytes:
    body = MAGIC + (2).to_bytes(2, "little") + minor.to_bytes(2, "little")
    body += write_varint(len(header)) + write_varint(len(payload)) + header + payload
    return body + hashlib.blake2b(body, digest_size=16).digest()


def test_split_and_forge_v2_rebuild_the_file():
    assert forge_v2(*split_v2(VALID)[1:]) == VALID


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4), st.integers(0, 2), st.booleans())
def test_mutated_v2_header_with_valid_digest(mutations, minor, in_payload):
    _, header, payload = split_v2(VALID)
    buf = bytearray(payload if in_payload else header)
    for m in mutations:
        apply(buf, m)
    data = forge_v2(header, bytes(buf), minor) if in_payload else forge_v2(bytes(buf), payload, minor)
    c = parse_or_format_error(data)
    if c is not None:  # the edit kept a valid header (e.g. a byte of a name or of a param)
        again = container_from_bytes(container_to_bytes(c.records, c.metadata))
        assert again.records == c.records and again.metadata == c.metadata


json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
json_any = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=16,
)


@FUZZ
@given(json_any, json_any, st.integers(0, 2))
def test_any_json_in_metadata_and_params(metadata, params, minor):
    """JSON of any shape and value (NaN, huge integers, lists...) where objects are expected."""
    meta = json.dumps(metadata, allow_nan=True).encode()
    par = json.dumps(params, allow_nan=True).encode()
    entry = write_varint(0) + write_varint(1) + b"w" + b"\x00\x00\x01\x02" + write_varint(2 * len(par)) + par
    header = write_varint(len(meta)) + meta + write_varint(1) + entry + write_varint(3)
    c = parse_or_format_error(forge_v2(header, b"abc", minor))
    if c is not None:
        assert c.metadata == metadata and c.records[0].params == params
