"""Lossless entropy coding: filter tables (ANS via constriction) and canonical Huffman.

Public API:
- :func:`encode_cells` / :func:`decode_cells`: a filter table of ``m`` t-bit cells <-> a
  self-describing record (model included; raw fallback flagged when coding does not help).
- :func:`encode_filter` / :func:`decode_filter`: a whole Bloomier filter with entropy-coded
  tables (raw filter bytes when coding does not help).
- :mod:`weightless.entropy.huffman`: canonical Huffman with code-length tables (used by the
  Deep Compression baseline).

Imports numpy and constriction only (numba optional).
"""

from __future__ import annotations

from .filter_record import decode_filter, encode_filter
from .table_coder import cells_kind, decode_cells, empirical_entropy_bits, encode_cells

__all__ = ["encode_cells", "decode_cells", "cells_kind", "empirical_entropy_bits",
           "encode_filter", "decode_filter"]
