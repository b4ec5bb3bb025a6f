"""The .wl container format version 1 (the previous version, JSON header): still read, and
written on request (``version=1``). Round trips, the committed golden file, every
malformed-file case of the v1 layout. Version-independent tests (records, writer inputs, atomic
writes, CLI) and version 2 are in test_container_format.py."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless_lab.cli.main import main
from weightless.container import (
    Record,
    container_from_bytes,
    container_to_bytes,
    read_container,
    write_container,
)
from weightless.container.format import (
    DTYPES,
    MAGIC,
    MAX_HEADER_BYTES,
    PREAMBLE,
    PREAMBLE_SIZE,
    RECORD_FIELDS,
    dumps_header,
)
from container_samples import META, json_values, names, sample_records  # tests/ is on sys.path
from weightless.errors import (
    BadMagicError,
    ChecksumError,
    FieldError,
    HeaderTooLargeError,
    InputError,
    OffsetError,
    TruncatedError,
    UnsupportedVersionError,
)

# ----------------------------------------------------------------------------------- helpers


GOLDEN_V1 = Path(__file__).parent / "golden" / "container_v1_sample.wl"


@pytest.fixture(scope="module")
def valid() -> bytes:
    return container_to_bytes(sample_records(), META, version=1)


def split(data: bytes) -> tuple[list, dict, bytes]:
    """(preamble fields, header object, payload) of a valid file."""
    fields = list(PREAMBLE.unpack(data[:PREAMBLE_SIZE]))
    hlen = fields[4]
    header = json.loads(data[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen])
    return fields, header, data[PREAMBLE_SIZE + hlen :]


def forge(
    header: dict | bytes,
    payload: bytes,
    *,
    major: int = 1,
    minor: int = 0,
    reserved: int = 0,
    header_len: int | None = None,
    payload_len: int | None = None,
    digest: bytes | None = None,
) -> bytes:
    """Build a file around any header with a *correct* header checksum unless ``digest``."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    hl = len(hb) if header_len is None else header_len
    pl = len(payload) if payload_len is None else payload_len
    pre = PREAMBLE.pack(MAGIC, major, minor, reserved, hl, pl, bytes(16))[:32]
    d = hashlib.blake2b(pre + hb, digest_size=16).digest() if digest is None else digest
    return pre + d + hb + payload


def reforge(data: bytes, edit) -> bytes:
    """Apply ``edit(header)`` to the header of a valid file and fix the header checksum."""
    _, header, payload = split(data)
    edit(header)
    return forge(header, payload)


# ------------------------------------------------------------------------------ round trips

records_st = st.lists(
    st.builds(
        Record,
        name=names,
        encoding=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,10}", fullmatch=True),
        shape=st.lists(st.integers(0, 50), max_size=4).map(tuple),
        dtype=st.sampled_from(sorted(DTYPES)),
        params=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
        payload=st.binary(max_size=64),
    ),
    max_size=6,
    unique_by=lambda r: r.name,
)


@settings(deadline=None, max_examples=60)
@given(records=records_st, metadata=st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_round_trip_bit_for_bit(records, metadata):
    data = container_to_bytes(records, metadata, version=1)
    c = container_from_bytes(data)
    assert c.records == tuple(records)
    assert c.metadata == metadata
    assert c.version == (1, 0)
    assert c.file_bytes == len(data)
    assert (PREAMBLE_SIZE + c.header_bytes) % 8 == 0
    # Same input -> identical bytes, also from a re-ordered metadata dict and a re-read.
    assert container_to_bytes(records, dict(reversed(list(metadata.items()))), version=1) == data
    assert container_to_bytes(c.records, c.metadata, version=1) == data
    # The same content written as version 2 reads back the same.
    c2 = container_from_bytes(container_to_bytes(records, metadata))
    assert c2.version == (2, 0) and c2.records == c.records and c2.metadata == c.metadata


def test_file_round_trip_and_size(tmp_path, valid):
    path = tmp_path / "m.wl"
    n = write_container(path, sample_records(), META, version=1)
    assert n == len(valid) == path.stat().st_size
    assert path.read_bytes() == valid
    c = read_container(path)
    assert c.records == tuple(sample_records())
    assert c.record("fc1.bias").payload == np.arange(300, dtype=np.float32).tobytes()
    assert c.names == ("fc1.weight", "fc1.bias", "empty", "fc2.weight")
    assert c.payload_bytes == sum(len(r.payload) for r in sample_records())
    with pytest.raises(InputError, match="no record named 'nope'"):
        c.record("nope")
    assert os.listdir(tmp_path) == ["m.wl"]


def test_golden_bytes(valid):
    """Pins the exact bytes: any silent change of the format fails here (bump the version).
    The committed file was written by the version 1 writer (before version 2 existed)."""
    assert valid[:16] == MAGIC + b"\x01\x00\x00\x00\x00\x00\x00\x00"
    assert hashlib.sha256(valid).hexdigest() == GOLDEN_SHA256
    assert GOLDEN_V1.read_bytes() == valid


def test_golden_v1_file_still_loads():
    c = read_container(GOLDEN_V1)
    assert c.version == (1, 0) and c.records == tuple(sample_records()) and c.metadata == META
    assert c.overhead_bytes == c.file_bytes - sum(len(r.payload) for r in sample_records())


GOLDEN_SHA256 = "536d7e3a1dab80a5a567901cc39060956209d158df451d21f48bec6e2d365c7c"



# ------------------------------------------------------------------------- malformed files


def test_bad_magic(valid):
    with pytest.raises(BadMagicError, match="expected the .wl magic"):
        container_from_bytes(b"PK\x03\x04" + valid[4:])
    with pytest.raises(BadMagicError):
        container_from_bytes(b"x")
    with pytest.raises(BadMagicError):
        container_from_bytes(b'{"__metadata__": {}}' + bytes(100))


@pytest.mark.parametrize("major", [0, 3, 65535])
def test_unknown_major_version(valid, major):
    data = bytearray(valid)
    struct.pack_into("<H", data, 8, major)
    with pytest.raises(UnsupportedVersionError, match=f"version {major}.0; this reader supports 1.x and 2.x"):
        container_from_bytes(bytes(data))


def test_newer_minor_is_read_and_may_add_keys(valid):
    _, header, payload = split(valid)
    header["future"] = 1
    header["records"][0]["future"] = {"x": 1}
    c = container_from_bytes(forge(header, payload, minor=7))
    assert c.version == (1, 7) and c.records == tuple(sample_records())
    with pytest.raises(FieldError, match="unknown keys"):
        container_from_bytes(forge(header, payload, minor=0))


def test_reserved_word_must_be_zero(valid):
    _, header, payload = split(valid)
    with pytest.raises(FieldError, match="reserved"):
        container_from_bytes(forge(header, payload, reserved=1))


def test_header_over_cap(valid):
    data = bytearray(valid)
    struct.pack_into("<Q", data, 16, MAX_HEADER_BYTES + 1)
    with pytest.raises(HeaderTooLargeError, match="16777217 bytes; the cap is 16777216"):
        container_from_bytes(bytes(data))
    with pytest.raises(HeaderTooLargeError, match="the cap is 10 bytes"):
        container_from_bytes(valid, max_header_bytes=10)
    with pytest.raises(InputError):
        container_from_bytes(valid, max_header_bytes=-1)


def test_header_length_past_eof(valid):
    data = bytearray(valid)
    struct.pack_into("<Q", data, 16, len(valid))
    with pytest.raises(TruncatedError, match="truncated"):
        container_from_bytes(bytes(data))


def test_payload_length_past_eof_and_trailing_bytes(valid):
    data = bytearray(valid)
    struct.pack_into("<Q", data, 24, 2**64 - 1)
    with pytest.raises(TruncatedError):
        container_from_bytes(bytes(data))
    with pytest.raises(OffsetError, match="3 unexpected bytes follow the payload"):
        container_from_bytes(valid + b"abc")


def test_no_allocation_beyond_file_size(tmp_path, valid):
    """A tiny file declaring a 16 MiB header and a huge payload is rejected without reading them."""
    data = bytearray(valid)
    struct.pack_into("<QQ", data, 16, MAX_HEADER_BYTES, 2**62)
    path = tmp_path / "liar.wl"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedError):
            read_container(path)
        with pytest.raises(TruncatedError):
            container_from_bytes(bytes(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_truncation_at_every_byte(valid):
    for i in range(len(valid)):
        with pytest.raises(TruncatedError):
            container_from_bytes(valid[:i])


def test_truncated_file_on_disk(tmp_path, valid):
    path = tmp_path / "t.wl"
    for cut in (0, 5, PREAMBLE_SIZE, PREAMBLE_SIZE + 10, len(valid) - 1):
        path.write_bytes(valid[:cut])
        with pytest.raises(TruncatedError):
            read_container(path)


def test_header_checksum_mismatch(valid):
    _, header, _ = split(valid)
    i = PREAMBLE_SIZE + 5  # inside the header JSON
    data = valid[:i] + bytes([valid[i] ^ 0x01]) + valid[i + 1 :]
    with pytest.raises(ChecksumError, match="header checksum"):
        container_from_bytes(data)
    data = valid[:40] + bytes([valid[40] ^ 0x80]) + valid[41:]  # the stored digest itself
    with pytest.raises(ChecksumError):
        container_from_bytes(data)
    _, header, payload = split(valid)
    with pytest.raises(ChecksumError):  # the preamble's first 32 bytes are covered too
        container_from_bytes(forge(header, payload, minor=1, digest=valid[32:48]))


def test_payload_checksum_mismatch(valid):
    data = bytearray(valid)
    data[-3] ^= 0x10  # inside fc2.weight's payload (the last record)
    with pytest.raises(ChecksumError, match="record 'fc2.weight': payload checksum"):
        container_from_bytes(bytes(data))


def _set_offsets(pairs):
    def edit(h):
        for rec, pair in zip(h["records"], pairs):
            rec["offsets"] = pair
    return edit


@pytest.mark.parametrize(
    "pairs, match",
    [
        ([[1, 98]], "begins at 1, which leaves a hole; expected it to begin at 0"),
        ([[0, 97], [90, 1290]], "overlaps the previous record"),
        ([[0, 97], [100, 1297]], "leaves a hole"),
        ([[0, 97], [97, 5000]], "outside the payload"),
        ([[0, 97], [97, 1297], [1297, 1297], [1297, 1300]], "cover 1300 bytes"),
    ],
)
def test_bad_offsets(valid, pairs, match):
    with pytest.raises(OffsetError, match=match):
        container_from_bytes(reforge(valid, _set_offsets(pairs)))


def test_reforge_without_edit_is_valid(valid):
    assert container_from_bytes(reforge(valid, lambda h: None)).records == tuple(sample_records())


@pytest.mark.parametrize(
    "header_bytes, match",
    [
        (b"{not json", "not valid JSON"),
        (b'{"metadata": {}, "records": [', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"metadata": {"x": NaN}, "records": []}', "NaN"),
        (b'{"metadata": {"x": -Infinity}, "records": []}', "Infinity"),
        (b'{"metadata": {"x": 1e999}, "records": []}', "overflows"),
        (b'{"metadata": {}, "metadata": {}, "records": []}', "repeats the key 'metadata'"),
        (b'{"metadata": {"x": ' + b"9" * 5000 + b'}, "records": []}', "5000 digits"),
        (b'{"metadata": {"x": ' + b"9" * 30 + b'}, "records": []}', r"\[-2\*\*63, 2\*\*64\)"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply|expected a JSON object"),
        (b'{"metadata": {"x": ' + b"[" * 70 + b"]" * 70 + b'}, "records": []}', "nested deeper"),
        (b"[]", "expected a JSON object"),
        (b'{"records": []}', "no 'metadata' key"),
        (b'{"metadata": {}}', "no 'records' key"),
        (b'{"metadata": [], "records": []}', "header.metadata is"),
        (b'{"metadata": {}, "records": {}}', "expected a list of record entries"),
        (b'{"metadata": {}, "records": [5]}', r"header.records\[0\] is 5"),
        (b'{"metadata": {"s": "\\ud800"}, "records": []}', "surrogate"),
    ],
)
def test_bad_header_json(header_bytes, match):
    with pytest.raises(FieldError, match=match):
        container_from_bytes(forge(header_bytes, b""))


def test_empty_container_is_valid():
    c = container_from_bytes(forge(b'{"metadata": {}, "records": []}', b""))
    assert c.records == () and c.metadata == {}


@pytest.mark.parametrize("key", [spec.key for spec in RECORD_FIELDS])
def test_missing_record_field(valid, key):
    def edit(h):
        del h["records"][1][key]

    with pytest.raises(FieldError, match=rf"header.records\[1\] has no '{key}' key"):
        container_from_bytes(reforge(valid, edit))


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("name", 7, "expected a string"),
        ("name", "", "empty"),
        ("encoding", "BLOOMIER", "a-z"),
        ("shape", [300.0], "integer"),
        ("shape", [-1], "integer in"),
        ("shape", [True], "integer"),
        ("shape", "300", "list of non-negative"),
        ("shape", [2**30, 2**30], "elements"),
        ("dtype", "float128", "expected one of"),
        ("params", [], "JSON object"),
        ("offsets", [0], r"expected \[begin, end\]"),
        ("offsets", [5, 1], "begin <= end"),
        ("offsets", [0, 2**63], "integer in"),
        ("blake2b", "00", "32 lower-case hex"),
        ("blake2b", 5, "expected a string"),
    ],
)
def test_ill_typed_record_field(valid, key, value, match):
    def edit(h):
        h["records"][1][key] = value

    with pytest.raises(FieldError, match=match):
        container_from_bytes(reforge(valid, edit))


def test_unknown_record_key_in_current_version(valid):
    def edit(h):
        h["records"][0]["extra"] = 1

    with pytest.raises(FieldError, match="unknown keys"):
        container_from_bytes(reforge(valid, edit))


def test_duplicate_names(valid):
    def edit(h):
        h["records"][2]["name"] = "fc1.weight"

    with pytest.raises(FieldError, match=r"records\[2\] and header.records\[0\] are both named"):
        container_from_bytes(reforge(valid, edit))



def test_canonical_header_text(valid):
    fields, header, _ = split(valid)
    text = valid[PREAMBLE_SIZE : PREAMBLE_SIZE + fields[4]]
    assert text == dumps_header(header)
    assert b", " not in text.rstrip(b" ") and b": " not in text



def test_cli_inspect_good_file(tmp_path, capsys, valid):
    path = tmp_path / "m.wl"
    path.write_bytes(valid)
    assert main(["inspect", str(path)]) == 2  # the sample payloads are not real encodings
    assert "fc1.weight" in capsys.readouterr().err
    assert main(["inspect", "--no-decode", str(path)]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert info["format_version"] == "1.0"
    assert info["file_bytes"] == len(valid)
    assert info["overhead_bytes"] == len(valid) - info["payload_bytes"] == 48 + info["header_bytes"]
    assert info["payload_bytes"] == sum(len(r.payload) for r in sample_records())
    assert info["metadata"] == META
    assert [r["name"] for r in info["records"]] == ["fc1.weight", "fc1.bias", "empty", "fc2.weight"]
    first = info["records"][0]
    assert first["shape"] == [300, 784] and first["dtype"] == "float32"
    assert first["encoding"] == "bloomier" and first["payload_bytes"] == 97
    assert first["params"]["t"] == 8
    assert info["encodings"]["dense-f32"] == {"records": 1, "payload_bytes": 1200, "numel": 300}
    assert err == ""



def test_format_doc_example_bytes():
    """The hex dump in docs/FORMAT.md matches what the writer produces."""
    data = container_to_bytes([Record("fc1.bias", "raw", (2,), "uint8", {}, b"\x01\x02")], {"model": "demo"}, version=1)
    assert len(data) == 234 and data[16] == 0xB8 and data[-2:] == b"\x01\x02"
    assert data[32:48].hex() == "6b3ff91110a3c5f1755551939b70c9af"

