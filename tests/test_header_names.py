"""All the names of a header together take at most 16 bytes per header byte + 64 KiB: a shared
prefix lets a 13-byte entry stand for a 4,096-byte name (a 200 KB header held 94 MB of names)."""

import pytest

from weightless.container import Record, container_from_bytes, container_to_bytes
from weightless.container.layout import names_allowance
from weightless.errors import FieldError, InputError

from test_container_format import entry, forge2, header2

BASE = "\U0001F600" * 1023  # 4,092 bytes, 1,023 characters


def _names(n):
    return [BASE + chr(0x10000 + i) for i in range(n)]


def test_a_header_whose_names_decode_too_long_is_refused():
    names = [s.encode("utf-8") for s in _names(100)]
    entries = [entry(names[0], shape=(0,))] + [entry(s[4092:], shared=4092, shape=(0,)) for s in names[1:]]
    header = header2(entries)
    assert sum(map(len, names)) > names_allowance(len(header))
    with pytest.raises(FieldError, match="names so far"):
        container_from_bytes(forge2(header))
    ok = header2(entries[:20])  # 20 such names fit the allowance of their header
    assert len(container_from_bytes(forge2(ok)).records) == 20


def test_the_writer_refuses_what_the_reader_would():
    recs = [Record(n, "dense", (0,), "float32", {}, b"") for n in _names(100)]
    with pytest.raises(InputError, match="names take"):
        container_to_bytes(recs, {})
    assert len(container_from_bytes(container_to_bytes(recs[:20], {})).records) == 20
