"""bfloat16 <-> float32 on numpy arrays (numpy has no bfloat16): a bfloat16 value is kept as its
uint16 word, the upper half of a float32."""

from __future__ import annotations

import numpy as np

__all__ = ["bfloat16_to_float32", "float32_to_bfloat16"]


def bfloat16_to_float32(words: np.ndarray) -> np.ndarray:
    """Return the float32 values of bfloat16 ``words`` (uint16 bit patterns); exact."""
    return (np.asarray(words, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Return the bfloat16 words (uint16) nearest to float32 ``values`` (round half to even, as
    torch does); NaN stays NaN."""
    u = np.asarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((u + (((u >> 16) & 1) + 0x7FFF).astype(np.uint32)) >> 16).astype(np.uint16)
    return np.where(np.isnan(np.asarray(values, dtype=np.float32)), (u >> 16).astype(np.uint16) | 0x40, rounded)
