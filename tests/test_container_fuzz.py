"""Fuzzing the .wl reader: whatever the bytes, only FormatError (or a valid Container) comes out.

Both format versions: 2 (written by default; binary header, one digest) and 1 (JSON header)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightless.container import Container, Record, container_from_bytes, container_to_bytes
from weightless.container.format import MAGIC, PREAMBLE, PREAMBLE_SIZE, ByteReader, write_varint
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
VALID_V1 = container_to_bytes(RECORDS, {"model": "fuzz", "n": 3}, version=1)
BOTH = pytest.mark.parametrize("valid", [VALID, VALID_V1], ids=["v2", "v1"])


def forge(header_bytes: bytes, payload: bytes, minor: int = 0) -> bytes:
    """A v1 file around ``header_bytes`` with consistent lengths and a correct header checksum."""
    pre = PREAMBLE.pack(MAGIC, 1, minor, 0, len(header_bytes), len(payload), bytes(16))[:32]
    return pre + hashlib.blake2b(pre + header_bytes, digest_size=16).digest() + header_bytes + payload


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


@BOTH
@FUZZ
@given(data=st.data())
def test_bit_flips_are_always_detected(valid, data):
    """Every byte of a file is covered by a length check or a checksum: any flip is an error."""
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


@BOTH
@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=5))
def test_random_mutations(valid, mutations):
    buf = bytearray(valid)
    for m in mutations:
        apply(buf, m)
    result = parse_or_format_error(bytes(buf))
    if bytes(buf) != valid:
        assert result is None  # lengths and checksums catch every change


# Structure-aware fuzzing: the checksums are recomputed, so the field and offset checks are hit.

json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
json_any = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=16,
)
keys = ["name", "encoding", "shape", "dtype", "params", "offsets", "blake2b", "other"]
plausible_value = {
    "name": st.text(max_size=6) | json_any,
    "encoding": st.sampled_from(["raw", "dense-f32", "Bad", ""]) | json_any,
    "shape": st.lists(st.integers(-2, 2**41), max_size=3) | json_any,
    "dtype": st.sampled_from(["float32", "uint8", "float8"]) | json_any,
    "params": st.dictionaries(st.text(max_size=4), json_any, max_size=3) | json_any,
    "offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2) | json_any,
    "blake2b": st.sampled_from([hashlib.blake2b(b"", digest_size=16).hexdigest(), "0" * 32]) | json_any,
    "other": json_any,
}
entry = st.fixed_dictionaries({}, optional={k: plausible_value[k] for k in keys})
header_obj = st.fixed_dictionaries(
    {}, optional={"metadata": json_any, "records": st.lists(entry, max_size=3) | json_any, "x": json_any}
) | json_any


@FUZZ
@given(header_obj, st.binary(max_size=40), st.integers(0, 2))
def test_random_headers_with_valid_checksum(header, payload, minor):
    text = json.dumps(header, allow_nan=True).encode()
    parse_or_format_error(forge(text, payload, minor))


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_header_text_with_valid_checksum(mutations):
    hlen = PREAMBLE.unpack(VALID_V1[:PREAMBLE_SIZE])[4]
    header = bytearray(VALID_V1[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen])
    for m in mutations:
        apply(header, m)
    c = parse_or_format_error(forge(bytes(header), VALID_V1[PREAMBLE_SIZE + hlen :]))
    if c is not None:  # the edit kept a valid header (e.g. padding, a digit of a param)
        again = container_from_bytes(container_to_bytes(c.records, c.metadata))
        assert again.records == c.records and again.metadata == c.metadata


# Version 2: mutate the binary header (and the payload), fix the lengths and the digest, so the
# header parser itself sees the damage.


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
