#!/usr/bin/env python3
"""Latency of `watch`: from a template write to its updated output.

    python3 benches/watch_latency.py                # 1,000 files, 100 edits, 50 ms debounce
    python3 benches/watch_latency.py --dir /dev/shm --edits 200

Generates a 1,000-file project with examples/gen_project.rs, starts
`mage-secrets watch`, then edits one file at a time (a new value in it) and
polls its output until the new value appears. Reports p50/p95/max of the
latency and of the latency less the debounce window (DESIGN §7: p95 within
10 ms after the window, on 10,000 files).
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "mage-secrets")
GEN = os.path.join(ROOT, "target", "release", "examples", "gen_project")


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--debounce", type=int, default=50)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "--examples", "--bins"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="mage-secrets-watch-", dir=args.dir)
    proc = None
    try:
        subprocess.run([GEN, "--files", str(args.files), "--refs", "20", "--secrets", "100", "--out", work],
                       check=True, stdout=subprocess.DEVNULL)
        project = os.path.join(work, "project")
        files = []
        for root, _, names in os.walk(project):
            files += [os.path.relpath(os.path.join(root, n), project) for n in names]
        proc = subprocess.Popen(
            [BIN, "--data-dir", "mage_data", "watch", "project", "--out", "build", "--debounce", str(args.debounce)],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while "watching:" not in (proc.stderr.readline() or "watching:"):
            pass
        rng = random.Random(7)
        latencies = []
        for i in range(args.edits):
            rel = rng.choice(files)
            source = os.path.join(project, rel)
            with open(source) as f:
                text = f.read()
            marker = f"edit_marker_{i}_{rng.randrange(10**9)}"
            text = text.rstrip("\n").rsplit("\nedited:", 1)[0] + f"\nedited: {marker}\n"
            output = os.path.join(work, "build", rel)
            start = time.perf_counter()
            with open(source, "w") as f:
                f.write(text)
            while True:
                try:
                    with open(output) as f:
                        if marker in f.read():
                            break
                except FileNotFoundError:
                    pass
                if time.perf_counter() - start > 10:
                    raise SystemExit(f"edit {i} of {rel} did not show up within 10 s")
                time.sleep(0.0005)
            latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(args.debounce / 1000 * 2)  # let the batch settle before the next edit
        after = [l - args.debounce for l in latencies]
        print(f"\n{args.files} files, {args.edits} edits, debounce {args.debounce} ms, folder {args.dir}")
        print(f"write -> output: p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
              f"max {max(latencies):.1f} ms")
        print(f"after the debounce window: p50 {statistics.median(after):.1f} ms, p95 {percentile(after, 95):.1f} ms")
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
