"""Shared samples of the container tests (both format versions): records, metadata and the
hypothesis strategies of JSON values."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from weightless.container import Record


def sample_records() -> list[Record]:
    rng = np.random.default_rng(0)
    return [
        Record(
            "fc1.weight",
            "bloomier",
            (300, 784),
            "float32",
            {"t": 8, "k": 16, "c": 1.25, "seeds": [1, 2**64 - 1], "codebook": [0.5, -0.25]},
            rng.integers(0, 256, 97, dtype=np.uint8).tobytes(),
        ),
        Record("fc1.bias", "dense-f32", (300,), "float32", {}, np.arange(300, dtype=np.float32).tobytes()),
        Record("empty", "raw", (0, 3), "uint8", {"note": "zero elements"}, b""),
        Record("fc2.weight", "dense-f16", (2, 2), "float16", {"scale": None}, b"\x00\x3c" * 4),
    ]


META = {"model": "lenet300", "recipe": {"pruning": "magnitude"}, "versions": {"weightless": "0.1.0"}}

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
)
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False
) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12,
)
# Names that share prefixes (ASCII and multi-byte), so the prefix coding is exercised, including
# a shared byte prefix that ends inside a multi-byte character.
