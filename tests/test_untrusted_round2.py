"""Untrusted files, round 2 (issue 24): tiny files that declare huge tensors end in a
FormatError (LimitError or a minimum-length rule) before anything large is allocated; coded
streams with lying lengths are rejected before decoding; the limits can be raised for a
trusted file, and the writer warns when it writes a file default readers refuse.

Every crafted file is built from its description in the issue."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import constriction
import numpy as np
import pytest

import weightless as wl
from weightless.container import Record
from weightless.entropy._bits import Reader
from weightless.entropy._bits import write_varint as varint
from weightless.entropy.index_decoder import parse_positions, parse_symbols
from weightless.errors import FormatError, LimitError, TruncatedError
from weightless.io.limits import Limits

from crafted import bloomier_record, params_for, wl_bytes, zero_ans_filter

TRUSTING = Limits(max_expansion=1 << 40, max_cells_per_byte=1 << 40)
F16_CB = np.array([0.0, 1.0], dtype="<f2").tobytes()  # k = 2, codebook format 1 (float16)


def _ans(symbols, probs) -> bytes:
    model = constriction.stream.model.Categorical(np.asarray(probs, dtype=np.float64), perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.asarray(symbols, dtype=np.int32), model)
    return coder.get_compressed().astype("<u4").tobytes()


def _coded(encoding: str, shape, body: bytes, dtype: str = "float32", cb: bytes = F16_CB, k: int = 2) -> bytes:
    payload = varint(k) + bytes([1]) + cb + body
    return wl_bytes([Record("w", encoding, tuple(shape), dtype, {}, payload)])


def _rejects(tmp_path, data: bytes, error=FormatError, limits=None, peak_mib: int = 16):
    """load_arrays and inspect raise ``error`` with a small traced peak (no large allocation)."""
    p = tmp_path / "x.wl"
    p.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(error) as ei:
            wl.load_arrays(p, limits=limits)
        with pytest.raises(error):
            wl.inspect(p, limits=limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < peak_mib << 20, peak
    return ei.value


# ------------------------------------------------------------------ the files
def test_57_byte_indexed_2_30_uniform_empty_stream(tmp_path):
    """One indexed record of 2**30 float32 elements, uniform symbols model, empty ANS stream:
    killed the process (SIGABRT in the entropy coder) under a 4 GiB address-space cap."""
    data = _coded("indexed", (1 << 30,), bytes([0]) + varint(0))
    assert len(data) <= 60
    err = _rejects(tmp_path, data, LimitError)
    assert err.limit == "max_expansion"
    # trusted limits: the format's minimum-length rule rejects the empty stream before decoding
    err = _rejects(tmp_path, data, TruncatedError, limits=TRUSTING)
    assert "cannot hold" in str(err)


def test_56_byte_indexed_2_26_zeros(tmp_path):
    data = _coded("indexed", (1 << 26,), bytes([0]) + varint(0))
    assert len(data) <= 60
    assert _rejects(tmp_path, data, LimitError).limit == "max_expansion"
    _rejects(tmp_path, data, TruncatedError, limits=TRUSTING)


def test_57_byte_2_28_uniform_stream_of_one_word(tmp_path):
    """A valid one-word uniform stream whose tail of symbol 0 costs nothing: 2**28 elements."""
    words = _ans([1], [0.5, 0.5])
    data = _coded("indexed", (1 << 28,), bytes([0]) + varint(len(words)) + words)
    assert len(data) < 64
    assert _rejects(tmp_path, data, LimitError).limit == "max_expansion"


def test_52_byte_sparse_n0_2_28(tmp_path):
    """sparse, n = 0 (all zero), 2**28 elements: 1 GiB decoded from 52 bytes."""
    data = _coded("sparse", (1 << 28,), varint(0), k=1, cb=F16_CB[:2])
    assert len(data) <= 56
    assert _rejects(tmp_path, data, LimitError).limit == "max_expansion"


def test_1466_byte_bfloat16_indexed_valid_but_huge(tmp_path):
    """A *valid* indexed bfloat16 (60, 1048576) record from a few dozen bytes: refused by
    default; a smaller file of the same kind decodes with the limit raised."""
    size = 60 * 1048576
    counts = [size - 1, 1]
    words = _ans([1], np.array(counts) / size)  # the tail of symbol 0 is free
    body = bytes([1]) + b"".join(varint(c) for c in counts) + varint(len(words)) + words
    data = _coded("indexed", (60, 1048576), body, dtype="bfloat16")
    assert len(data) < 1466
    assert _rejects(tmp_path, data, LimitError).limit == "max_expansion"
    small = 1 << 20
    counts = [small - 1, 1]
    words = _ans([1] + [0] * 1000, np.array(counts) / small)
    body = bytes([1]) + b"".join(varint(c) for c in counts) + varint(len(words)) + words
    p = tmp_path / "s.wl"
    p.write_bytes(_coded("indexed", (small,), body, dtype="bfloat16"))
    with pytest.raises(LimitError):
        wl.load_arrays(p, limits=Limits(expansion_allowance=0))
    out = wl.load_arrays(p, limits=Limits(max_expansion=1 << 20))["w"]
    assert out.dtype == np.float32 and out[0] == 1.0 and not out[1:].any()


def test_163_byte_filter_all_zero_2_28_cells(tmp_path):
    """A filter record of one 0x12 all-zero table of 2**28 cells for 2**26 positions."""
    size, m = 1 << 26, 1 << 28
    filt = zero_ans_filter(k=1, t=2, size=size, ms=[m])
    data = wl_bytes([bloomier_record("w", (size,), [0.5], filt, params_for(k=1, t=2, shards=[(0, m, 0)],
                                                                              coding="ans"))])
    assert len(data) < 400
    assert _rejects(tmp_path, data, LimitError).limit in ("max_expansion", "max_cells_per_byte")


def test_2_14_shards_of_2_14_zero_cells(tmp_path):
    """2**14 shards of 2**14 zero cells each (about 410 KB): +1.28 GiB before; now refused
    by the cells per payload byte."""
    shards = 1 << 14
    size = (1 << 26)
    filt = zero_ans_filter(k=1, t=2, size=size, ms=[1 << 14] * shards)
    data = wl_bytes([bloomier_record("w", (size,), [0.5], filt)])
    assert 300_000 < len(data) < 500_000
    assert _rejects(tmp_path, data, LimitError, peak_mib=64).limit == "max_cells_per_byte"


@pytest.mark.parametrize("elements", [1 << 28, 1 << 29, 1 << 30])
def test_tiny_files_declaring_2_28_to_2_30_elements(tmp_path, elements):
    """51-63 byte files: MemoryError before; now LimitError (and FormatError when trusted)."""
    for body in (bytes([0]) + varint(0), bytes([0]) + varint(4) + bytes(4), bytes([2])):
        data = _coded("indexed", (elements,), body)
        assert len(data) < 64
        assert _rejects(tmp_path, data, LimitError).limit == "max_expansion"


# ------------------------------------------------------------------ minimum-length rules
def _reader(b: bytes) -> Reader:
    return Reader(b, "t")


def test_histogram_stream_too_short_for_its_counts():
    counts = [1000, 1000, 1000, 1000]
    stream = bytes([1]) + b"".join(varint(c) for c in counts) + varint(4) + bytes([1, 0, 0, 0])
    with pytest.raises(TruncatedError, match="cannot hold"):
        parse_symbols(_reader(stream), 4000, 4, "t")


def test_flat_positions_too_short_for_n():
    size, n = 1 << 20, 1 << 14
    stream = varint(n) + bytes([0]) + varint(4) + bytes([1, 0, 0, 0])
    with pytest.raises(TruncatedError, match="cannot hold"):
        parse_positions(_reader(stream), size, "t")


def test_gaps_stream_too_short_and_counts_not_n():
    size, n, bits = 1 << 20, 5000, 4
    counts = [0] * (1 << bits)
    counts[3] = n
    counts[15] = 100
    body = bytes([bits]) + varint(sum(counts)) + b"".join(varint(c) for c in counts) + varint(4) + bytes([1, 0, 0, 0])
    with pytest.raises(TruncatedError, match="cannot hold"):
        parse_positions(_reader(varint(n) + bytes([2]) + body), size, "t")
    with pytest.raises(FormatError, match="marks"):
        parse_positions(_reader(varint(n + 1) + bytes([2]) + body), size, "t")


def test_real_streams_pass_the_rules():
    """Writer output of every positions and symbols model satisfies the rules (round trip),
    trailing runs of zeros included (they cost the coder nothing)."""
    from weightless.entropy.index_coder import encode_positions, encode_symbols
    from weightless.entropy.index_decoder import decode_positions, decode_symbols

    rng = np.random.default_rng(3)
    for density in (0.001, 0.01, 0.2, 0.9):
        mask = rng.random(200_000) < density
        mask[100_000:] = False  # a free tail
        for rows in (1, 400):
            enc = encode_positions(mask, rows)
            assert np.array_equal(decode_positions(_reader(enc), mask.size, "t", rows), mask)
    for k in (2, 3, 17, 300):
        sym = rng.integers(0, k, 50_000)
        sym[30_000:] = 0
        enc = encode_symbols(sym, k)
        assert np.array_equal(decode_symbols(_reader(enc), sym.size, k, "t"), sym)


# ------------------------------------------------------------------ writer warning
def test_writer_warns_when_default_readers_would_refuse(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wl.save(tmp_path / "ok.wl", {"w": np.ones(1000, np.float32)})
    with pytest.warns(UserWarning, match="max_expansion"):
        wl.save(tmp_path / "big.wl", {"w": np.zeros(1 << 23, np.float32)})  # 32 MiB of zeros, a few bytes
    with pytest.raises(LimitError):
        wl.load_arrays(tmp_path / "big.wl")
    assert not wl.load_arrays(tmp_path / "big.wl", limits=Limits(max_expansion=1 << 30))["w"].any()


# ------------------------------------------------------------------ no process kill
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics")
def test_no_abort_under_a_4_gib_address_space_cap(tmp_path):
    """The 57-byte file, trusted limits, numba and numpy paths, under RLIMIT_AS = 4 GiB:
    a FormatError, never SIGABRT."""
    p = tmp_path / "x.wl"
    words = _ans([1], [0.5, 0.5])
    p.write_bytes(_coded("indexed", (1 << 30,), bytes([0]) + varint(len(words)) + words))
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        import weightless as wl
        from weightless.errors import FormatError
        try:
            wl.load_arrays({str(p)!r})
        except FormatError as exc:
            print("FormatError", type(exc).__name__)
        try:
            wl.load_arrays({str(p)!r}, limits=wl.Limits(max_expansion=1 << 40))
        except (FormatError, MemoryError) as exc:
            print("trusted", type(exc).__name__)
    """)
    for numba in ("0", "1"):
        env = dict(os.environ, WEIGHTLESS_DISABLE_NUMBA=numba)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "FormatError LimitError" in r.stdout and "trusted" in r.stdout


# ------------------------------------------------------------------ writes never clobber
def _ckpt(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "in.safetensors"
    save_file({"w": np.ones((4, 4), np.float32)}, str(p))
    return p


def _cli(argv, capsys):
    from weightless_lab.cli.main import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_write_refuses_a_fifo_and_a_socket(tmp_path, capsys):
    import socket
    import stat

    from weightless.errors import InputError

    fifo = tmp_path / "out.wl"
    os.mkfifo(fifo)
    code, err = _cli(["encode", _ckpt(tmp_path), "-o", fifo], capsys)
    assert code == 2 and "FIFO" in err[-1] and "Traceback" not in "\n".join(err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO
    with pytest.raises(InputError, match="FIFO"):
        wl.save(fifo, {"w": np.ones(3, np.float32)})
    sock_path = tmp_path / "s.wl"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(InputError, match="socket"):
            wl.save(sock_path, {"w": np.ones(3, np.float32)})
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    with pytest.raises(InputError, match="directory"):
        wl.save(tmp_path, {"w": np.ones(3, np.float32)})
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_write_through_a_symlink(tmp_path, capsys):
    target = tmp_path / "real" / "model.wl"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.wl"
    link.symlink_to(target)
    code, err = _cli(["encode", _ckpt(tmp_path), "-o", link], capsys)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)  # the link is kept
    assert wl.load_arrays(target)["w"].shape == (4, 4)  # its target replaced
    dangling = tmp_path / "new.wl"
    dangling.symlink_to(tmp_path / "real" / "fresh.wl")
    wl.save(dangling, {"w": np.ones(3, np.float32)})
    assert dangling.is_symlink() and (tmp_path / "real" / "fresh.wl").is_file()
    loop = tmp_path / "loop.wl"
    loop.symlink_to(loop)
    from weightless.errors import InputError

    with pytest.raises(InputError):
        wl.save(loop, {"w": np.ones(3, np.float32)})


def test_inspect_with_stdout_closed(tmp_path):
    p = tmp_path / "good.wl"
    wl.save(p, {"w": np.ones(3, np.float32)})
    code = "import sys; from weightless_lab.cli.main import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(["sh", "-c", 'exec "$0" -c "$1" inspect "$2" >&-', sys.executable, code, str(p)],
                       capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "standard output is closed" in lines[0], r.stderr
