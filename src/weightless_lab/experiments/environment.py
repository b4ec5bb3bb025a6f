"""The environment a result was measured in: versions, git commit, machine (the CPU's vector
instruction set among them: it changes float rounding), seeds and date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .common import ReproConfig

__all__ = ["env_info"]


def _git_commit() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def env_info(cfg: ReproConfig | None = None) -> dict[str, Any]:
    """Return the environment of a run: versions, git commit, machine, seeds, date (UTC)."""
    import weightless

    versions: dict[str, Any] = {"weightless": weightless.__version__, "python": platform.python_version(),
                                "numpy": np.__version__}
    for mod in ("torch", "numba", "constriction"):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                m = None
        versions[mod] = getattr(m, "__version__", None) if m is not None else None
    threads, capability = None, None
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
        capability = sys.modules["torch"].backends.cpu.get_cpu_capability()
    from weightless.filters import constructions

    return {
        "versions": versions,
        "git": _git_commit(),
        "machine": {
            "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads": threads,
            # the vector instruction set torch's kernels use: it changes float rounding, so a
            # model trained on another one differs (and so does every figure after it)
            "torch_cpu_capability": capability,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "filter_constructions": sorted(constructions()),
        "seed": None if cfg is None else cfg.seed,
        "config": None if cfg is None else cfg.as_dict(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
