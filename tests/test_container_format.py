"""The .wl container, format version 2 (the only one written and read): round trips
(hypothesis), golden bytes, every malformed-file case of the binary header and of its JSON,
truncation and corruption at every byte, format 1 rejected, atomic writes, CLI."""

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
    Container,
    Record,
    container_from_bytes,
    container_to_bytes,
    read_container,
    write_container,
)
from weightless.container import reader as reader_mod
from weightless.container.format import (
    DTYPE_IDS,
    DTYPES,
    ENCODING_IDS,
    MAGIC,
    MAX_HEADER_BYTES,
    write_varint,
)
from container_samples import META, json_values, names, sample_records  # tests/ is on sys.path
from weightless.errors import (
    BadMagicError,
    ChecksumError,
    FieldError,
    FormatError,
    HeaderTooLargeError,
    InputError,
    OffsetError,
    TruncatedError,
    UnsupportedVersionError,
)

GOLDEN = Path(__file__).parent / "golden"

# ----------------------------------------------------------------------------------- helpers






@pytest.fixture(scope="module")
def valid() -> bytes:
    return container_to_bytes(sample_records(), META)


v = write_varint


def forge2(
    header: bytes,
    payload: bytes = b"",
    *,
    major: int = 2,
    minor: int = 0,
    header_len: int | None = None,
    payload_len: int | None = None,
    digest: bytes | None = None,
) -> bytes:
    """A v2 file around any header bytes, with a *correct* digest unless ``digest`` is given."""
    hl = len(header) if header_len is None else header_len
    pl = len(payload) if payload_len is None else payload_len
    body = MAGIC + struct.pack("<HH", major, minor) + v(hl) + v(pl) + header + payload
    return body + (hashlib.blake2b(body, digest_size=16).digest() if digest is None else digest)


def entry(name: bytes, *, shared: int = 0, enc: bytes = b"\x00", dtype: int = 0, shape=(2,),
          params: bytes = b"", params_code: int | None = None, length: int = 0,
          ndim: int | None = None) -> bytes:
    """One v2 record entry (docs/FORMAT.md), fields overridable one by one."""
    out = v(shared) + v(len(name)) + name + enc + bytes([dtype])
    out += bytes([len(shape) if ndim is None else ndim]) + b"".join(v(d) for d in shape)
    out += v(2 * len(params) if params_code is None else params_code) + params
    return out + v(length)


def header2(entries: list[bytes], metadata: bytes = b"", count: int | None = None) -> bytes:
    return v(len(metadata)) + metadata + v(len(entries) if count is None else count) + b"".join(entries)


def parse_or_format_error(data: bytes):
    """Parse ``data``; any exception other than FormatError fails the test."""
    try:
        return container_from_bytes(data)
    except FormatError as exc:
        assert str(exc)
        return None


# ------------------------------------------------------------------------------ round trips

prefixed_names = st.tuples(
    st.sampled_from(["fc1.", "fc1.w", "conv", "层.", "层", "\u00e9", "\U0001f600x"]), st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)
).map("".join)
encodings = st.sampled_from(ENCODING_IDS) | st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,10}", fullmatch=True)
repeated_params = st.sampled_from([{}, {"stored": "float32"}, {"stored": "float16"}, {"k": 3, "t": [1, 2]}])
records_st = st.lists(
    st.builds(
        Record,
        name=names | prefixed_names,
        encoding=encodings,
        shape=st.lists(st.integers(0, 50), max_size=4).map(tuple),
        dtype=st.sampled_from(sorted(DTYPES)),
        params=repeated_params | st.dictionaries(st.text(max_size=6), json_values, max_size=4),
        payload=st.binary(max_size=64),
    ),
    max_size=6,
    unique_by=lambda r: r.name,
)


@settings(deadline=None, max_examples=100)
@given(records=records_st, metadata=st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_round_trip_bit_for_bit(records, metadata):
    data = container_to_bytes(records, metadata)
    c = container_from_bytes(data)
    assert c.records == tuple(records)
    assert c.metadata == metadata
    assert c.version == (2, 0)
    assert c.file_bytes == len(data)
    assert c.overhead_bytes == len(data) - sum(len(r.payload) for r in records)
    assert data[-16:] == hashlib.blake2b(data[:-16], digest_size=16).digest()
    # Same input -> identical bytes, also from a re-ordered metadata dict and a re-read.
    assert container_to_bytes(records, dict(reversed(list(metadata.items())))) == data
    assert container_to_bytes(c.records, c.metadata) == data
    # Records read back never share a params object (a repeated params is parsed again).
    ids = [id(r.params) for r in c.records if r.params]
    assert len(ids) == len(set(ids))


def test_file_round_trip_and_size(tmp_path, valid):
    path = tmp_path / "m.wl"
    n = write_container(path, sample_records(), META)
    assert n == len(valid) == path.stat().st_size
    assert path.read_bytes() == valid
    c = read_container(path)
    assert c.version == (2, 0)
    assert c.records == tuple(sample_records())
    assert c.record("fc1.bias").payload == np.arange(300, dtype=np.float32).tobytes()
    assert c.names == ("fc1.weight", "fc1.bias", "empty", "fc2.weight")
    assert c.payload_bytes == sum(len(r.payload) for r in sample_records())
    with pytest.raises(InputError, match="no record named 'nope'"):
        c.record("nope")
    assert os.listdir(tmp_path) == ["m.wl"]


def test_no_version_argument(tmp_path):
    """Only format 2 is written: there is no option to pick another."""
    with pytest.raises(TypeError):
        container_to_bytes(sample_records(), META, version=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        write_container(tmp_path / "m.wl", sample_records(), META, version=1)  # type: ignore[call-arg]


def test_format_1_is_not_supported(tmp_path):
    """A file of format 1 (the JSON-header format of development versions before 0.1.0; this one
    was written by its writer) is rejected with a clear UnsupportedVersionError."""
    data = (GOLDEN / "model_v1.wl").read_bytes()
    assert data[:12] == MAGIC + b"\x01\x00\x00\x00"
    match = r"format version 1.0, which is not supported: .* this reader supports 2.x \(it writes 2.0\)"
    with pytest.raises(UnsupportedVersionError, match=match):
        read_container(GOLDEN / "model_v1.wl")
    with pytest.raises(UnsupportedVersionError, match=match):
        container_from_bytes(data)
    with pytest.raises(UnsupportedVersionError, match="format version 1.7, which is not supported"):
        container_from_bytes(data[:10] + b"\x07\x00" + data[12:])
    with pytest.raises(FormatError, match="format version 1.0"):  # even just the version
        container_from_bytes(data[:12])


def golden_records() -> list[Record]:
    """The records of tests/golden/container_v2_small.hex and of the example in docs/FORMAT.md:
    an encoding outside the id table (escaped), a shared name prefix, a repeated params object,
    a 0-d tensor, metadata."""
    return [
        Record("fc1.bias", "raw", (2,), "uint8", {}, b"\x01\x02"),
        Record("fc1.weight", "dense", (2, 3), "float32", {"stored": "float32"}, bytes(24)),
        Record("fc2.weight", "dense", (), "float32", {"stored": "float32"}, b"\x00\x00\x20\x40"),
    ]


def test_golden_bytes():
    """Pins the exact bytes of a small v2 file: any silent change of the format fails here."""
    data = container_to_bytes(golden_records(), {"model": "demo"})
    text = (GOLDEN / "container_v2_small.hex").read_text()
    assert data == bytes.fromhex("".join(text.split()))
    assert len(data) == 148
    c = container_from_bytes(data)
    assert c.records == tuple(golden_records()) and c.metadata == {"model": "demo"}
    assert (c.header_bytes, c.overhead_bytes) == (88, 118)


def test_golden_layout_by_hand():
    """The golden file, rebuilt field by field from docs/FORMAT.md (not with the writer)."""
    meta = b'{"model":"demo"}'
    header = v(len(meta)) + meta + v(3)
    header += v(0) + v(8) + b"fc1.bias" + b"\xff" + v(3) + b"raw" + bytes([DTYPE_IDS.index("uint8")])
    header += b"\x01" + v(2) + v(0) + v(2)
    params = b'{"stored":"float32"}'
    header += v(4) + v(6) + b"weight" + bytes([ENCODING_IDS.index("dense"), 0, 2]) + v(2) + v(3)
    header += v(2 * len(params)) + params + v(24)
    header += v(2) + v(8) + b"2.weight" + b"\x00\x00\x00" + v(1) + v(4)  # params: 1 record back
    payload = b"\x01\x02" + bytes(24) + b"\x00\x00\x20\x40"
    assert forge2(header, payload) == container_to_bytes(golden_records(), {"model": "demo"})


def test_format_doc_example_bytes():
    """The hex dump in docs/FORMAT.md ("Container example") is what the writer produces."""
    doc = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text()
    section = doc[doc.index("## Container example"):]
    section = section[section.index("```") + 3:]
    section = section[: section.index("```")]
    dumped = bytearray()
    for line in section.strip().splitlines():
        dumped += bytes.fromhex(line[10:58].replace(" ", ""))
    assert bytes(dumped) == container_to_bytes(golden_records(), {"model": "demo"})


def test_ids_are_one_byte_and_escape_names_others():
    recs = [Record(f"r{i}", enc, (1,), "uint8", {}, b"") for i, enc in enumerate(ENCODING_IDS)]
    recs.append(Record("r9", "dense-f32", (1,), "uint8", {}, b""))
    data = container_to_bytes(recs, {})
    assert b"dense-f32" in data and b"bloomier" not in data and b"sparse" not in data
    assert container_from_bytes(data).records == tuple(recs)
    for name in DTYPE_IDS:
        c = container_from_bytes(container_to_bytes([Record("x", "dense", (), name, {}, b"")], {}))
        assert c.records[0].dtype == name
    assert DTYPE_IDS[:4] == ("float32", "float16", "bfloat16", "float64")  # fixed forever


def test_repeated_params_are_stored_once():
    p = {"stored": "float32"}
    recs = [Record(f"l{i}.bias", "dense", (4,), "float32", p, bytes(16)) for i in range(10)]
    data = container_to_bytes(recs, {})
    assert data.count(b"stored") == 1
    c = container_from_bytes(data)
    assert c.records == tuple(recs)
    c.records[0].params["stored"] = "changed"  # a repeat is its own object
    assert c.records[1].params == p
    # A long params object is written each time (a repeat may cover at most 128 bytes).
    big = {"codebook": list(range(60))}
    recs = [Record(f"w{i}", "dense", (4,), "float32", big, b"") for i in range(3)]
    assert container_to_bytes(recs, {}).count(b"codebook") == 3


def test_overhead_of_a_ten_tensor_model():
    """Issue 12: a 10-tensor model of ~5.7 KB pays well under 5% for the container."""
    rng = np.random.default_rng(0)
    recs = []
    for i in range(5):
        recs.append(Record(f"layer{i}.weight", "bloomier", (300, 100), "float32", {"k": 9}, rng.bytes(950)))
        recs.append(Record(f"layer{i}.bias", "dense", (100,), "float32", {"stored": "float16"}, rng.bytes(140)))
    data = container_to_bytes(recs, {"model": "lenet5"})
    c = container_from_bytes(data)
    assert 5600 < len(data) < 5800 and c.overhead_bytes <= 0.05 * len(data), (len(data), c.overhead_bytes)
    assert (len(data), c.overhead_bytes) == (5694, 244)  # docs/FORMAT.md, "Layout"


def test_records_keep_given_order():
    a, b = sample_records()[:2]
    assert container_from_bytes(container_to_bytes([b, a], {})).names == (b.name, a.name)


def test_params_canonical_form():
    r = Record("w", "raw", [2, np.int64(3)], "int8", {"s": (1, 2), "k": np.int64(5), "f": np.float32(0.5)}, bytearray(b"ab"))
    assert r.shape == (2, 3) and type(r.shape[1]) is int
    assert r.params == {"s": [1, 2], "k": 5, "f": 0.5}
    assert r.payload == b"ab" and isinstance(r.payload, bytes)
    assert container_from_bytes(container_to_bytes([r], {})).records[0] == r


def test_module_needs_no_numpy_or_torch():
    import subprocess
    import sys

    code = (
        "import sys, weightless.container as c; "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)



# --------------------------------------------------------------------------- writer inputs


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": ""}, "empty"),
        ({"name": 5}, "expected a string"),
        ({"name": "a\nb"}, "control character"),
        ({"name": "x" * 1025}, "at most 1024"),
        ({"name": "\ud800"}, "surrogate"),
        ({"encoding": "Dense"}, "a-z"),
        ({"encoding": ""}, "a-z"),
        ({"shape": (-1,)}, r"\[0, "),
        ({"shape": (2.0,)}, "integer"),
        ({"shape": (True,)}, "integer"),
        ({"shape": (2**21, 2**20)}, "elements"),
        ({"shape": (1,) * 33}, "dimensions"),
        ({"shape": 5}, "list"),
        ({"dtype": "float8"}, "expected one of"),
        ({"params": []}, "JSON object"),
        ({"params": {"x": float("nan")}}, "finite"),
        ({"params": {"x": 2**64}}, "2\\*\\*64"),
        ({"params": {1: 2}}, "string keys"),
        ({"params": {"a": np.zeros(2)}}, "tolist"),
        ({"params": {"a": {1, 2}}}, "JSON data"),
        ({"payload": "text"}, "bytes"),
        ({"payload": 5}, "bytes"),
    ],
)
def test_record_rejects_bad_fields(kwargs, match):
    base = {"name": "w", "encoding": "raw", "shape": (1,), "dtype": "uint8", "params": {}, "payload": b"x"}
    base.update(kwargs)
    with pytest.raises(InputError, match=match):
        Record(**base)


def test_params_depth_cap():
    deep: list = []
    for _ in range(80):
        deep = [deep]
    with pytest.raises(InputError, match="nested deeper"):
        Record("w", "raw", (), "uint8", {"d": deep}, b"")


def test_writer_rejects_bad_inputs():
    r = sample_records()[1]
    with pytest.raises(InputError, match="names must be unique"):
        container_to_bytes([r, r], {})
    with pytest.raises(InputError, match="expected a Record"):
        container_to_bytes([r, {"name": "x"}], {})
    with pytest.raises(InputError, match="sequence"):
        container_to_bytes(r, {})
    with pytest.raises(InputError, match="JSON object"):
        container_to_bytes([r], [("model", "x")])
    with pytest.raises(InputError, match="finite"):
        container_to_bytes([r], {"acc": float("inf")})
    with pytest.raises(InputError, match="must be unique"):
        Container((r, r))


def test_writer_rejects_header_over_cap():
    big = Record("w", "raw", (0,), "uint8", {"blob": "x" * MAX_HEADER_BYTES}, b"")
    with pytest.raises(InputError, match="at most 16777216"):
        container_to_bytes([big], {})



def test_errors_are_format_errors_and_value_errors_only_for_input():
    assert issubclass(FieldError, FormatError)
    with pytest.raises(InputError):
        container_from_bytes("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- atomic writes


def test_atomic_write_failure_leaves_nothing(tmp_path, monkeypatch, valid):
    path = tmp_path / "m.wl"
    path.write_bytes(b"old")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        write_container(path, sample_records(), META)
    assert os.listdir(tmp_path) == ["m.wl"]
    assert path.read_bytes() == b"old"


def test_atomic_write_interrupted_leaves_nothing(tmp_path, monkeypatch):
    import weightless.container.writer as writer

    def interrupt(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_container(tmp_path / "m.wl", sample_records(), META)
    assert os.listdir(tmp_path) == []


def test_write_invalid_input_creates_nothing(tmp_path):
    r = sample_records()[0]
    with pytest.raises(InputError):
        write_container(tmp_path / "m.wl", [r, r], {})
    assert os.listdir(tmp_path) == []


def test_write_onto_directory_fails_cleanly(tmp_path):
    (tmp_path / "d.wl").mkdir()
    with pytest.raises(InputError, match="directory"):  # refused before anything is written
        write_container(tmp_path / "d.wl", sample_records(), {})
    assert os.listdir(tmp_path) == ["d.wl"]


def test_write_replaces_existing_file(tmp_path, valid):
    path = tmp_path / "m.wl"
    path.write_bytes(b"old contents")
    write_container(str(path), sample_records(), META)
    assert path.read_bytes() == valid


# -------------------------------------------------------------------------------------- CLI


def test_cli_inspect_good_file(tmp_path, capsys, valid):
    path = tmp_path / "m.wl"
    path.write_bytes(valid)
    assert main(["inspect", str(path)]) == 2  # the sample payloads are not real encodings
    assert "fc1.weight" in capsys.readouterr().err
    assert main(["inspect", "--no-decode", str(path)]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert info["format_version"] == "2.0"
    assert info["file_bytes"] == len(valid)
    assert info["payload_bytes"] == sum(len(r.payload) for r in sample_records())
    assert info["metadata"] == META
    assert [r["name"] for r in info["records"]] == ["fc1.weight", "fc1.bias", "empty", "fc2.weight"]
    first = info["records"][0]
    assert first["shape"] == [300, 784] and first["dtype"] == "float32"
    assert first["encoding"] == "bloomier" and first["payload_bytes"] == 97
    assert first["params"]["t"] == 8
    assert info["encodings"]["dense-f32"] == {"records": 1, "payload_bytes": 1200, "numel": 300}
    assert err == ""


def test_cli_inspect_summarises_long_params(tmp_path, capsys):
    rec = Record("w", "bloomier", (4,), "float32", {"codebook": list(range(100)), "t": 4}, b"xx")
    path = tmp_path / "m.wl"
    write_container(path, [rec], {})
    assert main(["inspect", "--no-decode", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["params"] == {
        "codebook": "<list of 100 items>",
        "t": 4,
    }
    assert main(["inspect", "--no-decode", "--full-params", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["params"]["codebook"] == list(range(100))


@pytest.mark.parametrize(
    "mangle, fragment",
    [
        (lambda d: d[:-1], "truncated"),
        (lambda d: b"GIF89a" + d[6:], "magic"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum"),
    ],
)
def test_cli_inspect_bad_file(tmp_path, capsys, valid, mangle, fragment):
    path = tmp_path / "bad.wl"
    path.write_bytes(mangle(valid))
    assert main(["inspect", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("weightless: error:") and fragment in lines[0]


def test_cli_inspect_missing_file(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.wl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.wl" in err[0]


def test_docstring_examples():
    import doctest

    import weightless.container as pkg

    result = doctest.testmod(pkg)
    assert result.attempted >= 1 and result.failed == 0



def test_written_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_container(tmp_path / "m.wl", sample_records(), {})
    finally:
        os.umask(old)
    assert (tmp_path / "m.wl").stat().st_mode & 0o777 == 0o644


def test_cli_inspect_reports_overhead(tmp_path, capsys, valid):
    path = tmp_path / "m.wl"
    path.write_bytes(valid)
    assert main(["inspect", "--no-decode", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    payload = sum(len(r.payload) for r in sample_records())
    assert info["format_version"] == "2.0"
    assert info["file_bytes"] == len(valid) and info["payload_bytes"] == payload
    assert info["overhead_bytes"] == len(valid) - payload
    assert info["overhead_percent"] == round(100 * (len(valid) - payload) / len(valid), 2)
    assert info["header_bytes"] < info["overhead_bytes"]
    assert (info["header_bytes"], info["overhead_bytes"]) == (299, 331)


def test_summary_of_a_built_container_has_no_overhead():
    from weightless.container import summarize_container

    s = summarize_container(Container(tuple(sample_records()), META))
    assert s["overhead_bytes"] is None and s["overhead_percent"] is None and s["format_version"] == "2.0"


# ------------------------------------------------------------------------- malformed files


def test_bad_magic(valid):
    with pytest.raises(BadMagicError, match="expected the .wl magic"):
        container_from_bytes(b"PK\x03\x04" + valid[4:])
    with pytest.raises(BadMagicError):
        container_from_bytes(b"x")
    with pytest.raises(BadMagicError):
        container_from_bytes(b'{"__metadata__": {}}' + bytes(100))


@pytest.mark.parametrize("major", [0, 1, 3, 4, 65535])
def test_unknown_major_version(valid, major):
    data = bytearray(valid)
    struct.pack_into("<H", data, 8, major)
    with pytest.raises(
        UnsupportedVersionError, match=rf"version {major}.0[;,] .*this reader supports 2.x \(it writes 2.0\)"
    ):
        container_from_bytes(bytes(data))


def test_newer_minor_may_append_header_fields():
    h = header2([entry(b"w", length=1)]) + b"future fields"
    c = container_from_bytes(forge2(h, b"x", minor=3))
    assert c.version == (2, 3) and c.records[0].name == "w"
    with pytest.raises(FieldError, match="13 unexpected bytes after the last record entry"):
        container_from_bytes(forge2(h, b"x", minor=0))


def test_header_over_cap(valid):
    data = forge2(b"", header_len=MAX_HEADER_BYTES + 1)
    with pytest.raises(HeaderTooLargeError, match="16777217 bytes; the cap is 16777216"):
        container_from_bytes(data)
    with pytest.raises(HeaderTooLargeError, match="the cap is 10 bytes"):
        container_from_bytes(valid, max_header_bytes=10)
    with pytest.raises(InputError):
        container_from_bytes(valid, max_header_bytes=-1)


def test_lengths_past_eof_and_trailing_bytes(valid):
    with pytest.raises(TruncatedError, match="truncated"):
        container_from_bytes(forge2(header2([]), header_len=1000))
    with pytest.raises(TruncatedError):
        container_from_bytes(forge2(header2([]), payload_len=2**63 - 1))
    with pytest.raises(OffsetError, match="3 unexpected bytes follow the digest"):
        container_from_bytes(valid + b"abc")


@pytest.mark.parametrize(
    "lengths, match",
    [
        (b"\x80\x00" + v(0), "overlong varint"),
        (b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (v(0) + v(2**63), "the payload length is 9223372036854775808; the maximum is"),
        (v(2**64) + v(0), "the header length is"),
    ],
)
def test_bad_length_varints(lengths, match):
    with pytest.raises(FieldError, match=match):
        container_from_bytes(MAGIC + b"\x02\x00\x00\x00" + lengths + bytes(40))


def test_no_allocation_beyond_file_size(tmp_path):
    """A 300-byte file declaring a 16 MiB header and a huge payload, or a header with a huge
    record count, is rejected without allocating anything large."""
    liar = (MAGIC + b"\x02\x00\x00\x00" + v(MAX_HEADER_BYTES) + v(2**62)).ljust(300, b"\x00")
    counted = forge2(v(0) + v(2**40) + bytes(260))  # valid digest, R far beyond the header
    shaped = forge2(header2([entry(b"w", shape=(2**40,) * 2)]))
    path = tmp_path / "liar.wl"
    path.write_bytes(liar)
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedError):
            read_container(path)
        with pytest.raises(TruncatedError):
            container_from_bytes(liar)
        with pytest.raises(FieldError, match="record count"):
            container_from_bytes(counted)
        with pytest.raises(FieldError, match="elements"):
            container_from_bytes(shaped)
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
    for cut in (0, 5, 12, 13, 40, len(valid) - 17, len(valid) - 1):
        path.write_bytes(valid[:cut])
        with pytest.raises(TruncatedError):
            read_container(path)


def test_every_flipped_byte_is_a_format_error(valid):
    """The digest covers every byte, the lengths the rest: any change at all is detected."""
    for i in range(len(valid)):
        for mask in (0x01, 0x80, 0xFF):
            data = bytearray(valid)
            data[i] ^= mask
            with pytest.raises(FormatError):
                container_from_bytes(bytes(data))


def test_digest_mismatch(valid):
    for i in (20, len(valid) - 20, len(valid) - 1):  # header, payload, the digest itself
        data = bytearray(valid)
        data[i] ^= 0x10
        with pytest.raises(ChecksumError, match="checksum .* the file is corrupt"):
            container_from_bytes(bytes(data))


def test_file_changed_while_read(valid):
    """Payloads are hashed again as read from a file: a change between the passes is caught."""

    class Changing(reader_mod._BytesSource):
        def __init__(self, data):
            super().__init__(data)
            self.mutable = True
            self.hashed = False

        def hash_into(self, h, offset, n):
            super().hash_into(h, offset, n)
            self._view = memoryview(bytes(self._view[:-20]) + b"\xee" + bytes(self._view[-19:]))

    with pytest.raises(ChecksumError, match="changed while it was being read"):
        reader_mod._parse(Changing(valid), MAX_HEADER_BYTES)


NAME = b"w"


@pytest.mark.parametrize(
    "header, payload, error, match",
    [
        (v(5) + b"{bad}" + v(0), b"", FieldError, "metadata is not valid JSON"),
        (v(2) + b"[]" + v(0), b"", FieldError, "metadata is .* expected a JSON object"),
        (v(11) + b'{"x":NaN}ab' + v(0), b"", FieldError, "metadata"),
        (v(9) + b'{"x":1e999}' [:9] + v(0), b"", FieldError, "metadata"),
        (v(50) + b"{}", b"", FieldError, "metadata length is 50; the maximum is 2"),
        (header2([entry(b"")]), b"", FieldError, "empty"),
        (header2([entry(b"a\nb")]), b"", FieldError, "control character"),
        (header2([entry(b"\xff\xfe")]), b"", FieldError, "not valid UTF-8"),
        (header2([entry(b"ab"), entry(b"", shared=2)]), b"", FieldError, "both named 'ab'"),
        (header2([entry(b"ab"), entry(b"c", shared=3)]), b"", FieldError, "shared name prefix is 3; the maximum is 2"),
        (header2([entry(b"\xe5\xb1"), entry(b"\x82", shared=2)]), b"", FieldError, "not valid UTF-8"),
        (header2([entry(b"w" * 4097)]), b"", FieldError, "name length is 4097; the maximum is 4096"),
        (header2([entry(b"x" * 1025)]), b"", FieldError, "at most 1024"),
        (header2([entry(NAME, enc=b"\x04")]), b"", FieldError, "encoding id is 4"),
        (header2([entry(NAME, enc=b"\xfe")]), b"", FieldError, "encoding id is 254"),
        (header2([entry(NAME, enc=b"\xff" + v(3) + b"Bad")]), b"", FieldError, "a-z"),
        (header2([entry(NAME, enc=b"\xff" + v(0))]), b"", FieldError, "a-z"),
        (header2([entry(NAME, enc=b"\xff" + v(2) + b"\xc3\xa9")]), b"", FieldError, "not ASCII"),
        (header2([entry(NAME, enc=b"\xff" + v(65) + b"a" * 65)]), b"", FieldError, "maximum is 64"),
        (header2([entry(NAME, dtype=13)]), b"", FieldError, "dtype id is 13"),
        (header2([entry(NAME, dtype=255)]), b"", FieldError, "dtype id is 255"),
        (header2([entry(NAME, shape=(1,) * 33)]), b"", FieldError, "33 dimensions; expected at most 32"),
        (header2([entry(NAME, shape=(), ndim=200)]), b"", FieldError, "200 dimensions"),
        (header2([entry(NAME, shape=(2**40 + 1,))]), b"", FieldError, "shape\\[0\\] is 1099511627777"),
        (header2([entry(NAME, shape=(2**21, 2**20))]), b"", FieldError, "elements"),
        (header2([entry(NAME, params=b"[1]")]), b"", FieldError, "params is .* expected a JSON object"),
        (header2([entry(NAME, params=b"{x}")]), b"", FieldError, "params is not valid JSON"),
        (header2([entry(NAME, params=b'{"a":1,"a":2}')]), b"", FieldError, "repeats the key 'a'"),
        (header2([entry(NAME, params=b'{"a":"\\ud800"}')]), b"", FieldError, "surrogate"),
        (header2([entry(NAME, params=b'{"a":' + b"9" * 30 + b"}")]), b"", FieldError, "2\\*\\*64"),
        (header2([entry(NAME, params_code=1)]), b"", FieldError, "only 0 records precede it"),
        (header2([entry(NAME), entry(b"v", params_code=3)]), b"", FieldError, "the record 2 entries back; only 1"),
        (header2([entry(NAME, params=b'{"a":"' + b"x" * 200 + b'"}'), entry(b"v", params_code=1)]), b"",
         FieldError, "a repeat may cover at most 128"),
        (header2([entry(NAME, params_code=200)]), b"", FieldError, "params"),
        (header2([entry(NAME, length=5)]), b"abc", OffsetError, "outside the payload of 3 bytes"),
        (header2([entry(NAME, length=1)]), b"abc", OffsetError, "cover 1 bytes of the payload"),
        (header2([]), b"abc", OffsetError, "cover 0 bytes"),
        (header2([entry(NAME, length=2**63)]), b"", FieldError, "payload length is 9223372036854775808"),
        (header2([entry(NAME)], count=2), b"", FieldError, "record count is 2; the maximum is 1"),
        (header2([entry(NAME), entry(b"v")], count=1), b"", FieldError, "unexpected bytes after the last record"),
        (header2([entry(NAME)])[:-1], b"", FieldError, "needs 1 bytes but only 0 remain"),
        (b"", b"", FieldError, "the metadata length needs 1 bytes"),
    ],
)
def test_bad_header_fields(header, payload, error, match):
    with pytest.raises(error, match=match):
        container_from_bytes(forge2(header, payload))


@pytest.mark.parametrize(
    "text, match",
    [
        (b"{not json", "not valid JSON"),
        (b'{"a": [', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"x": NaN}', "NaN"),
        (b'{"x": -Infinity}', "Infinity"),
        (b'{"x": 1e999}', "overflows"),
        (b'{"a": {}, "a": {}}', "repeats the key 'a'"),
        (b'{"x": ' + b"9" * 5000 + b"}", "5000 digits"),
        (b'{"x": ' + b"9" * 30 + b"}", r"\[-2\*\*63, 2\*\*64\)"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply|expected a JSON object"),
        (b'{"x": ' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper"),
        (b"[]", "expected a JSON object"),
        (b"5", "expected a JSON object"),
        (b'{"s": "\\ud800"}', "surrogate"),
    ],
)
@pytest.mark.parametrize("where", ["metadata", "params"])
def test_json_value_rules(text, match, where):
    """docs/FORMAT.md, "JSON values": the same rules for the metadata and every params object."""
    if where == "metadata":
        header = v(len(text)) + text + v(0)
    else:
        header = header2([entry(NAME, params=text)])
    with pytest.raises(FieldError, match=f"the {where}.*({match})"):
        container_from_bytes(forge2(header))


def test_empty_container_is_valid():
    c = container_from_bytes(forge2(header2([])))
    assert c.records == () and c.metadata == {}
    assert container_to_bytes([], {}) == forge2(b"\x00\x00")
    assert len(container_to_bytes([], {})) == 8 + 4 + 2 + 2 + 16


def test_escaped_known_encoding_and_explicit_empty_params_are_read():
    """Readers do not require the canonical form: an escaped 'dense' and an inline {} read the same."""
    h = header2([entry(NAME, enc=b"\xff" + v(5) + b"dense", params=b"{}", length=1)])
    c = container_from_bytes(forge2(h, b"x"))
    assert c.records[0].encoding == "dense" and c.records[0].params == {}


@settings(deadline=None, max_examples=150)
@given(st.binary(max_size=120), st.integers(0, 2), st.booleans())
def test_random_headers_with_valid_digest(header, minor, with_payload):
    """Whatever the header bytes (with a correct digest), only FormatError or a valid container."""
    c = parse_or_format_error(forge2(header, b"abc" if with_payload else b"", minor=minor))
    if c is not None:
        again = container_from_bytes(container_to_bytes(c.records, c.metadata))
        assert again.records == c.records and again.metadata == c.metadata
