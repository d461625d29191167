#!/usr/bin/env python3
"""Whole-process timings of mage-secrets against `cp -r`, as DESIGN §7 asks.

    python3 benches/perf.py                  # trees of 100, 1,000 and 10,000 files in $TMPDIR
    python3 benches/perf.py --dir /dev/shm   # on tmpfs: no disk journal noise
    python3 benches/perf.py --sizes 1000 --runs 30

For each size it generates a project (20 references per file over 100
secrets) with `examples/gen_project.rs`, then times, as whole processes,
`render --out` (into a new folder each run), `cp -r` of the same tree (into
a new folder each run), `check` and `get`, and reports the medians, the
ratio render / cp -r, the peak RSS of each command, and the growth of
render time from 1,000 to 10,000 files. Output folders are removed only
after all runs, so no run pays for an earlier one's deletion.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "mage-secrets")
GEN = os.path.join(ROOT, "target", "release", "examples", "gen_project")


def run(argv, cwd):
    """Runs argv; returns (seconds, peak RSS in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{err}")
    return elapsed, usage.ru_maxrss


def measure(name, make_argv, cwd, runs):
    times, rss = [], []
    for i in range(runs):
        t, m = run(make_argv(i), cwd)
        times.append(t)
        rss.append(m)
    return {"name": name, "median_ms": statistics.median(times) * 1000, "rss_kib": max(rss)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "--examples", "--bins"], cwd=ROOT, check=True)
    rows = []
    for n in args.sizes:
        work = tempfile.mkdtemp(prefix=f"mage-secrets-bench-{n}-", dir=args.dir)
        try:
            subprocess.run([GEN, "--files", str(n), "--refs", "20", "--secrets", "100", "--out", work],
                           check=True, stdout=subprocess.DEVNULL)
            runs = args.runs if n <= 1000 else max(5, args.runs // 3)
            data = ["--data-dir", "mage_data", "-q"]
            # Warm the page cache and the binary once.
            run([BIN, *data, "render", "project", "--out", "warm"], work)
            run(["cp", "-r", "project", "warm_cp"], work)
            results = {}
            # Interleave render and cp so that both see the same machine state.
            r_times, c_times, r_rss = [], [], []
            for i in range(runs):
                t, m = run([BIN, *data, "render", "project", "--out", f"out_{i}"], work)
                r_times.append(t)
                r_rss.append(m)
                t, _ = run(["cp", "-r", "project", f"cp_{i}"], work)
                c_times.append(t)
            results["render"] = {"median_ms": statistics.median(r_times) * 1000, "rss_kib": max(r_rss)}
            results["cp"] = {"median_ms": statistics.median(c_times) * 1000, "rss_kib": 0}
            results["check"] = measure("check", lambda i: [BIN, *data, "check", "project"], work, runs)
            results["get"] = measure("get", lambda i: [BIN, *data, "get", "secret_42"], work, max(runs, 30))
            rows.append((n, results))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nmachine: {os.cpu_count()} cores; folder: {args.dir}; medians of {args.runs} runs (fewer for 10,000 files)\n")
    print("| files | cp -r | render --out | render / cp -r | check | get | render peak RSS | check peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        ratio = r["render"]["median_ms"] / r["cp"]["median_ms"]
        print(f"| {n:,} | {r['cp']['median_ms']:.1f} ms | {r['render']['median_ms']:.1f} ms | {ratio:.2f}x "
              f"| {r['check']['median_ms']:.1f} ms | {r['get']['median_ms']:.2f} ms "
              f"| {r['render']['rss_kib'] / 1024:.1f} MiB | {r['check']['rss_kib'] / 1024:.1f} MiB |")
    by_size = dict(rows)
    if 1000 in by_size and 10000 in by_size:
        t1, t10 = by_size[1000]["render"]["median_ms"], by_size[10000]["render"]["median_ms"]
        print(f"\nrender from 1,000 to 10,000 files: {t1:.1f} ms -> {t10:.1f} ms, "
              f"{(t10 - t1) / 9:.1f} ms per 1,000 more files ({t10 / t1:.1f}x for 10x the files)")


if __name__ == "__main__":
    main()
