"""Long structure-aware fuzz run of the ``.wl`` decoder (issue 14).

Mutates valid files of every record kind, written in container format version 2
(tests/fuzzing.py: filter header and shard fields, cell records, params, shapes, dtypes, and the
bytes of the container's binary header: names, encoding and dtype ids, shapes, params codes,
payload lengths; every checksum recomputed: the file's digest and lengths, the filter CRC-32),
decodes each input with the
fuzzing limits (``Limits.scaled(64 MiB)``) and reports counts per outcome, the slowest input,
and peak memory (RSS) above the baseline. Run once with numba and once with
``WEIGHTLESS_DISABLE_NUMBA=1``::

    python benchmarks/fuzz_files.py --inputs 100000
    WEIGHTLESS_DISABLE_NUMBA=1 python benchmarks/fuzz_files.py --inputs 100000

Writes results/bench/fuzz_files_<path>.json and .md (path = numba or numpy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from fuzzing import FUZZ_LIMITS, decode, hostile_file, mutate, outcome, seed_files  # noqa: E402

from weightless._compat import HAVE_NUMBA  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _corpus() -> list[bytes]:
    """Seed files; built in a numba-enabled subprocess when numba is disabled here (the compact
    construction's solver needs numba), so both runs mutate the same files."""
    if HAVE_NUMBA:
        return seed_files(use_compact=True)
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTLESS_DISABLE_NUMBA"}
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from fuzzing import seed_files; "
            "print(json.dumps([b.hex() for b in seed_files(True)]))")
    out = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "tests")], env=env,
                         capture_output=True, text=True, check=True).stdout
    return [bytes.fromhex(h) for h in json.loads(out)]


def _edge_files() -> dict[str, bytes]:
    """Hostile files that sit just inside the fuzzing limits (the most a file may make the
    decoder do): a 64 MiB tensor from a 0-key filter, a table of max_tensor_cells zero cells
    coded in a few bytes, and the same table with a t = 1 histogram model."""
    from crafted import bloomier_record, params_for, raw_filter, wl_bytes, zero_ans_filter

    lim = FUZZ_LIMITS
    size = lim.max_tensor_bytes // 4
    cells = lim.max_tensor_cells
    small = cells // lim.max_cells_per_element
    out = {"empty_filter_64MiB": wl_bytes([bloomier_record(
        "w", (size,), [0.5], raw_filter(k=1, t=2, size=size, shards=[(0, 0, 0, b"", b"")]),
        params_for(k=1, t=2, shards=[(0, 0, 0)]))])}
    for name, t, kind in (("zero_uniform_max_cells", 2, 0x12), ("histogram_t1_max_cells_8_shards", 1, 0x13)):
        ms = [cells // 8] * 8 if "8_shards" in name else [cells]
        filt = zero_ans_filter(k=1, t=t, size=small, ms=ms, kind=kind)
        out[name] = wl_bytes([bloomier_record("w", (small,), [0.5], filt, params_for(
            k=1, t=t, shards=[(0, m, 0) for m in ms], coding="ans"))])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "bench"))
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds of fuzzing")
    ap.add_argument("--hostile", type=float, default=0.25,
                    help="fraction of inputs drawn from the generated hostile families (issue 24)")
    ap.add_argument("--address-space-gib", type=float, default=4.0,
                    help="RLIMIT_AS of this process (0: none): an abort in native code would end the run")
    args = ap.parse_args()
    if args.address_space_gib:
        cap = int(args.address_space_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    path = "numba" if HAVE_NUMBA else "numpy"
    seeds = _corpus()
    # warm up (numba compilation, imports) and time the unmutated files: the reference
    t_ref = []
    for data in seeds * 3:
        t0 = time.perf_counter()
        assert outcome(lambda: decode(data, FUZZ_LIMITS))[0] == "ok"
        t_ref.append(time.perf_counter() - t0)
    ref = sorted(t_ref)[len(t_ref) // 2]
    base_rss = _rss_mib()
    edges = {}
    for name, data in _edge_files().items():  # before the random inputs, so RSS growth is theirs
        t0 = time.perf_counter()
        kind, _ = outcome(lambda: decode(data, FUZZ_LIMITS))
        edges[name] = {"file_bytes": len(data), "outcome": kind, "seconds": round(time.perf_counter() - t0, 4),
                       "peak_rss_above_baseline_mib": round(_rss_mib() - base_rss, 1)}
    rng = random.Random(args.seed)
    counts: dict[str, int] = {}
    crashes: list[dict] = []
    slowest = (0.0, "")
    t_all = time.perf_counter()
    over_2s = 0
    families: dict[str, dict[str, int]] = {}
    small_max_decoded = 0  # the most bytes any input with a payload under 1 KB decoded to
    done = 0
    for i in range(args.inputs):
        if args.seconds is not None and time.perf_counter() - t_all > args.seconds:
            break
        done += 1
        if rng.random() < args.hostile:
            family, data = hostile_file(rng)
        else:
            family = "mutated"
            data = seeds[rng.randrange(len(seeds))]
            for _ in range(rng.randint(1, 3)):
                data = mutate(rng, data)
        t0 = time.perf_counter()
        kind, info = outcome(lambda: decode(data, FUZZ_LIMITS))
        dt = time.perf_counter() - t0
        counts[kind] = counts.get(kind, 0) + 1
        fam = families.setdefault(family, {})
        fam[kind] = fam.get(kind, 0) + 1
        if kind == "ok" and len(data) < 1024 + 200:  # the container adds < 200 bytes around the payload
            small_max_decoded = max(small_max_decoded, sum(int(a.nbytes) for a in info.values()))
        over_2s += dt > 2.0
        if dt > slowest[0]:
            slowest = (dt, kind)
        if kind.startswith("CRASH") and len(crashes) < 20:
            crashes.append({"input": i, "kind": kind, "message": info, "bytes_hex": data.hex()[:4000]})
        if (i + 1) % 10000 == 0:
            print(f"{i + 1} inputs, {counts}, slowest {slowest[0]:.3f}s, peak RSS {_rss_mib():.0f} MiB",
                  file=sys.stderr, flush=True)
    wall = time.perf_counter() - t_all
    limit_mib = FUZZ_LIMITS.max_file_bytes / 2**20
    peak = _rss_mib()
    result = {
        "benchmark": "fuzz_files",
        "path": path,
        "inputs": done,
        "seed": args.seed,
        "families": families,
        "hostile_fraction": args.hostile,
        "address_space_cap_gib": args.address_space_gib,
        "max_decoded_bytes_of_a_file_under_1_2_kb": small_max_decoded,
        "seed_files": len(seeds),
        "container_versions": sorted({f"{d[8] | d[9] << 8}.{d[10] | d[11] << 8}" for d in seeds}),
        "outcomes": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "crashes": crashes,
        "format_errors_or_ok_only": not any(k.startswith("CRASH") for k in counts),
        "max_seconds_per_input": round(slowest[0], 4),
        "slowest_outcome": slowest[1],
        "inputs_over_2s": over_2s,
        "reference_seconds_valid_file_median": round(ref, 6),
        "max_time_vs_reference": round(slowest[0] / ref, 1),
        "wall_seconds": round(wall, 1),
        "limits": {"max_file_bytes": FUZZ_LIMITS.max_file_bytes, "max_tensor_cells": FUZZ_LIMITS.max_tensor_cells},
        "limit_edge_files": edges,
        "baseline_rss_mib": round(base_rss, 1),
        "peak_rss_mib": round(peak, 1),
        "peak_rss_above_baseline_mib": round(peak - base_rss, 1),
        "peak_rss_above_baseline_minus_limit_mib": round(peak - base_rss - limit_mib, 1),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "command": " ".join(["WEIGHTLESS_DISABLE_NUMBA=1"] * (not HAVE_NUMBA) + ["python", "benchmarks/fuzz_files.py",
                                                                              f"--inputs {args.inputs}"]
                            + ([f"--seconds {args.seconds:g}"] if args.seconds is not None else [])),
    }
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"fuzz_files_{path}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result["outcomes"].items())
    edge_rows = "\n".join(f"| {k} | {v['file_bytes']} | {v['outcome']} | {v['seconds']} | {v['peak_rss_above_baseline_mib']} |"
                          for k, v in edges.items())
    with open(stem + ".md", "w") as f:
        f.write(
            f"# Structure-aware fuzzing of .wl files ({path} decode path)\n\n"
            f"`{result['command']}`: {done} inputs ({100 * args.hostile:.0f}% from the generated hostile families "
            f"of issue 24, the rest mutated) from {len(seeds)} valid files of every "
            f"record kind (container format {', '.join(result['container_versions'])}; record fields, filter "
            f"structures and the binary header mutated), checksums recomputed, limits `Limits.scaled(64 MiB)`.\n\n"
            f"| outcome | inputs |\n|---|---|\n{rows}\n\n"
            f"Per family: {json.dumps(families, sort_keys=True)}\n\n"
            f"- address-space cap (RLIMIT_AS): {args.address_space_gib:g} GiB; the run finished (no abort)\n"
            f"- the most any input of under 1.2 KB decoded to: {small_max_decoded:,} bytes\n"
            f"- only FormatError subclasses or a correct decode: **{result['format_errors_or_ok_only']}**\n"
            f"- slowest input: {result['max_seconds_per_input']} s ({result['slowest_outcome']}), "
            f"{result['max_time_vs_reference']}x the median decode of a valid seed file "
            f"({result['reference_seconds_valid_file_median']} s); inputs over 2 s: {over_2s}\n"
            f"- peak RSS {result['peak_rss_mib']} MiB, {result['peak_rss_above_baseline_mib']} MiB above the "
            f"warm baseline ({result['baseline_rss_mib']} MiB); configured limit 64 MiB of decoded tensors\n"
            f"- wall time {result['wall_seconds']} s, load average {tuple(round(x, 2) for x in result['load_average'])}\n\n"
            "Hostile files just inside the limits (decoded first; RSS growth is cumulative):\n\n"
            "| file | bytes | outcome | seconds | peak RSS above baseline (MiB) |\n|---|---|---|---|---|\n"
            f"{edge_rows}\n"
        )
    print(json.dumps({k: result[k] for k in ("path", "inputs", "outcomes", "families", "max_seconds_per_input",
                                             "peak_rss_above_baseline_mib", "max_decoded_bytes_of_a_file_under_1_2_kb")}))
    return 0 if result["format_errors_or_ok_only"] else 1


if __name__ == "__main__":
    sys.exit(main())
