"""``weightless inspect FILE.wl``: validate a container and print its description as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``inspect`` sub-command to ``subparsers``."""
    p = subparsers.add_parser(
        "inspect",
        help="validate a .wl file and print its records as JSON",
        description=(
            "Read FILE.wl, check every length, field, offset and checksum, and print JSON on "
            "stdout: format version, metadata, per-record name/shape/dtype/encoding/params and "
            "payload bytes, and the totals: file_bytes, payload_bytes, overhead_bytes (the "
            "container's own bytes: preamble, header, checksums) and overhead_percent. Every "
            "payload is decoded and checked too (filters are parsed, their CRC and params "
            "verified, not expanded) unless --no-decode. A corrupt file or payload gives a "
            "one-line error and exit code 2."
        ),
    )
    p.add_argument("file", metavar="FILE.wl", help="container file to inspect")
    p.add_argument(
        "--full-params",
        action="store_true",
        help="print every record's params in full (default: long lists are summarised)",
    )
    p.add_argument(
        "--no-decode",
        action="store_true",
        help="check only the container (header, offsets, checksums), not the payloads",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the description of ``args.file``; return 0. Errors propagate to ``main``."""
    from weightless.io.files import inspect

    summary = inspect(args.file, decode=not args.no_decode, full_params=args.full_params)
    summary = {"file": str(args.file), "payloads_checked": not args.no_decode, **summary}
    json.dump(summary, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
    return 0
