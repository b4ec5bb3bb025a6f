"""Run the reproduction's experiments in order and write their results.

:func:`reproduce` runs the chosen experiments, writes ``<out>/<name>.json`` and ``.md`` after
each one (so partial results survive an interruption), draws the figures from the JSON, and
writes ``<out>/README_results.md``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, Sequence

from weightless.errors import InputError
from .common import EXPERIMENTS, OPT_IN, Log, ReproConfig, write_result

__all__ = ["EXPERIMENTS", "OPT_IN", "run_experiment", "reproduce"]


def run_experiment(name: str, cfg: ReproConfig, out_dir: str | Path, log: Log) -> dict[str, Any]:
    """Run one experiment and write its JSON and Markdown into ``out_dir``; return the result.

    Raises:
        InputError: unknown experiment name.
    """
    if name not in EXPERIMENTS:
        raise InputError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    mod = importlib.import_module(f"{__package__}.{name}")
    if name in ("decode_times", "vgg"):
        result = mod.run(cfg, log, out_dir=str(out_dir))
    else:
        result = mod.run(cfg, log)
    write_result(out_dir, name, result, mod.markdown(result))
    return result


def reproduce(cfg: ReproConfig, out_dir: str | Path, only: Sequence[str] | None, log: Log) -> dict[str, Any]:
    """Run the experiments named in ``only`` (default: all but :data:`OPT_IN`, in
    :data:`EXPERIMENTS` order).

    Returns:
        ``{"out": str, "experiments": {name: seconds}, "figures": [paths], "seconds": total}``.

    Raises:
        InputError: an unknown name in ``only``.
    """
    from .plots import plot_all
    from .readme import write_readme_results

    names = [n for n in EXPERIMENTS if n not in OPT_IN] if not only else list(dict.fromkeys(only))
    for n in names:
        if n not in EXPERIMENTS:
            raise InputError(f"unknown experiment {n!r}; choose from {', '.join(EXPERIMENTS)}")
    names.sort(key=EXPERIMENTS.index)
    cfg.validate()
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    for i, n in enumerate(names):
        log(f"=== experiment {i + 1}/{len(names)}: {n} (total elapsed {time.perf_counter() - t0:.0f} s) ===")
        t1 = time.perf_counter()
        run_experiment(n, cfg, out_dir, log)
        timing[n] = round(time.perf_counter() - t1, 1)
        # figures and the README section are refreshed after each experiment (partial results survive)
        figures = [str(p) for p in plot_all(out_dir)]
        readme = write_readme_results(out_dir, total_seconds=time.perf_counter() - t0)
        log(f"=== {n} done in {timing[n]:.0f} s ===")
    figures = [str(p) for p in plot_all(out_dir)]
    readme = write_readme_results(out_dir, total_seconds=time.perf_counter() - t0)
    return {"out": str(out_dir), "experiments": timing, "figures": figures, "readme": str(readme),
            "seconds": round(time.perf_counter() - t0, 1)}
