"""Hash functions shared by every filter construction.

All hashing in weightless goes through :func:`hash64` (vectorised numpy) or its scalar twin
:func:`hash64_scalar` (a numba kernel when numba is present); both compute the same
function, bit for bit, so the numba and numpy paths of every filter agree. The function is the
splitmix64 finaliser applied to ``key + mix(seed)``: a bijection on 64-bit words with good
avalanche, and fully specified here so that files stay decodable by any implementation.

:func:`reduce32` maps the top 32 bits of a hash onto ``[0, n)`` without division
(Lemire's multiply-shift range reduction); ``n`` must be below ``2**32``.
"""

from __future__ import annotations

import numpy as np

from .._compat import njit

__all__ = ["GOLDEN", "seed_word", "hash64", "hash64_scalar", "reduce32", "derive_seed"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _fmix_int(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def seed_word(seed: int) -> np.uint64:
    """Return the 64-bit word that :func:`hash64` adds to every key for ``seed`` (any int)."""
    return np.uint64(_fmix_int((int(seed) & _MASK64) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019))


def derive_seed(base_seed: int, attempt: int) -> int:
    """Return the seed used on construction attempt ``attempt`` (0, 1, ...) from ``base_seed``.

    Attempt 0 uses ``base_seed`` itself; later attempts use a hashed derivation, so retries are
    reproducible and the seed that worked can be stored in a file as a plain integer.
    """
    if attempt == 0:
        return int(base_seed) & _MASK64
    return _fmix_int((int(base_seed) & _MASK64) ^ (attempt * 0xD1B54A32D192ED03))


def hash64(keys: np.ndarray, seed: int) -> np.ndarray:
    """Hash an integer array to uint64 words (vectorised; same result as :func:`hash64_scalar`).

    ``keys`` may be any integer dtype; negative values are taken modulo 2**64.
    """
    x = np.asarray(keys).astype(np.uint64, copy=False) + seed_word(seed)
    z = x ^ (x >> np.uint64(30))
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


@njit
def hash64_scalar(key: np.uint64, sw: np.uint64) -> np.uint64:
    """Scalar :func:`hash64` for use inside numba kernels; ``sw`` is ``seed_word(seed)``."""
    x = np.uint64(key) + sw
    z = x ^ (x >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def reduce32(h: np.ndarray, n: int) -> np.ndarray:
    """Map the top 32 bits of uint64 hashes onto ``[0, n)`` (vectorised); ``0 < n < 2**32``."""
    return ((h >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)
