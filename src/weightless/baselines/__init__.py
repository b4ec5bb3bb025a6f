"""Baselines: Deep Compression's CSR with relative indices, plain and Huffman-coded.

Public API (numpy only):
- :func:`csr_encode` / :func:`csr_decode`: plain CSR (Han et al. 2016), relative indices of
  ``index_bits`` bits (5 for FC, 8 for conv), filler zeros coded as value ``k``.
- :func:`dc_encode` / :func:`dc_decode`: the same entries, Huffman-coded (index and value
  streams separately, canonical code tables included).
- :func:`dense_weights`: the float32 weights from decoded ``(indices, codebook)``.
"""

from __future__ import annotations

from .csr import csr_decode, csr_encode, dense_weights
from .deep_compression import best_index_bits, dc_decode, dc_encode

__all__ = ["csr_encode", "csr_decode", "dc_encode", "dc_decode", "dense_weights", "best_index_bits"]
