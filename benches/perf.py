#!/usr/bin/env python3
"""Whole-process timings of mage-secrets against `cp -r`, as DESIGN §7 asks.

    python3 benches/perf.py                              # 1,000 and 10,000 files in $TMPDIR
    python3 benches/perf.py --dir /dev/shm               # on tmpfs: no disk journal noise
    python3 benches/perf.py --sizes 10000 --lines 20 --refs 20 --files-per-pipeline 10
    python3 benches/perf.py --sizes 10000 --pipeline-scaling 10 1000

The tree's shape is an option: files (--sizes), references per file
(--refs, over --secrets secrets), plain lines per file (--lines), and how
files spread over pipeline folders (--files-per-pipeline; without it, the
mixed Mage layout of `examples/gen_project.rs`). For each size it times,
with `hyperfine -N` (medians; each output goes into a fresh folder, removed
outside the timing), `render --out`, `cp -r` of the same tree, `check` and
`get`, and measures each command's peak RSS once. It reports the ratio
render / cp -r, the growth from the smallest to the largest size, and, with
--pipeline-scaling A B, render time with the files in A and in B pipeline
folders (the contract: within 10%).
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILT = os.path.join(ROOT, "target", "release", "mage-secrets")
# Runs use a copy of the binary, as `cargo install` makes one: a file the
# linker wrote piece by piece sits in the page cache in small pieces, and
# starting it takes two dozen more page faults (0.1 ms) than a copy.
BIN = None
GEN = os.path.join(ROOT, "target", "release", "examples", "gen_project")


def peak_rss_mib(argv, cwd):
    """Runs argv once under /usr/bin/time; its peak RSS in MiB. (A child of
    this script would count Python's own pages: Linux keeps the peak across
    exec.)"""
    with tempfile.NamedTemporaryFile(suffix=".rss") as out:
        proc = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%M", *argv], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr.decode()}")
        return int(open(out.name).read().split()[-1]) / 1024


def median_ms(command, cwd, runs, prepare=None, warmup=3):
    """The median of `runs` runs of command (a list), by hyperfine -N."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
                "--export-json", out.name]
        if prepare:
            argv += ["--prepare", prepare]
        argv.append(" ".join(command))
        subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))["results"][0]["median"] * 1000


def generate(work, files, args, pipelines=None):
    argv = [GEN, "--files", str(files), "--refs", str(args.refs), "--secrets", str(args.secrets),
            "--lines", str(args.lines), "--out", work]
    if pipelines:
        argv += ["--pipelines", str(pipelines)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


# Every generated file is rendered, wherever it lies (by default a render
# copies the YAML Mage reads without Jinja, such as a pipeline folder's other
# files): the figures are the renderer's, not a copy's.
EVERY_FILE = ["--include", "**/*.yaml", "--include", "**/*.yml"]


def measure_tree(work, runs, full=True):
    data = [BIN, "--data-dir", "mage_data", "-q"]
    r = {"render": median_ms([*data, "render", "project", "--out", "out", *EVERY_FILE], work, runs, "rm -rf out")}
    if not full:
        return r
    r["cp"] = median_ms(["cp", "-r", "project", "cp_out"], work, runs, "rm -rf cp_out")
    # As a user runs it: Mage's own selection (a pipeline's block YAML is
    # copied, not rendered).
    r["render_mage"] = median_ms([*data, "render", "project", "--out", "out"], work, runs, "rm -rf out")
    r["check"] = median_ms([*data, "check", "project", *EVERY_FILE], work, runs)
    # A 2 ms run is at the mercy of the machine's noise: many runs.
    r["get"] = median_ms([*data, "get", "secret_42"], work, max(runs * 20, 200), warmup=20)
    shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
    r["render_rss"] = peak_rss_mib([*data, "render", "project", "--out", "out", *EVERY_FILE], work)
    r["check_rss"] = peak_rss_mib([*data, "check", "project", *EVERY_FILE], work)
    r["get_rss"] = peak_rss_mib([*data, "get", "secret_42"], work)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="files per tree")
    ap.add_argument("--refs", type=int, default=20, help="references per file")
    ap.add_argument("--secrets", type=int, default=100, help="distinct secrets")
    ap.add_argument("--lines", type=int, default=0, help="plain lines per file, besides the references")
    ap.add_argument("--files-per-pipeline", type=int, help="all files in pipeline folders, this many in each")
    ap.add_argument("--pipeline-scaling", type=int, nargs=2, metavar=("FEW", "MANY"),
                    help="also render the largest tree spread over FEW and over MANY pipeline folders")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the trees go (e.g. /dev/shm)")
    args = ap.parse_args()
    if not shutil.which("hyperfine") or not os.path.exists("/usr/bin/time"):
        sys.exit("perf.py needs hyperfine and /usr/bin/time (apt-get install hyperfine time)")

    subprocess.run(["cargo", "build", "--release", "--quiet", "--examples", "--bins"], cwd=ROOT, check=True)
    global BIN
    installed = tempfile.mkdtemp(prefix="mage-secrets-bench-bin-")
    atexit.register(shutil.rmtree, installed, True)
    BIN = shutil.copy2(BUILT, os.path.join(installed, "mage-secrets"))
    rows = []
    for n in args.sizes:
        work = tempfile.mkdtemp(prefix=f"mage-secrets-bench-{n}-", dir=args.dir)
        try:
            pipelines = n // args.files_per_pipeline if args.files_per_pipeline else None
            generate(work, n, args, pipelines)
            rows.append((n, measure_tree(work, args.runs if n <= 1000 else max(5, args.runs // 2))))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    shape = (f"{args.refs} references over {args.secrets} secrets and {args.lines} plain lines per file, "
             + (f"{args.files_per_pipeline} files per pipeline folder" if args.files_per_pipeline
                else "mixed Mage layout"))
    print(f"\nmachine: {os.cpu_count()} cores; folder: {args.dir}; {shape}; hyperfine -N medians\n")
    print("| files | cp -r | render --out | render / cp -r | check | get | peak RSS render | check | get |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        print(f"| {n:,} | {r['cp']:.1f} ms | {r['render']:.1f} ms | {r['render'] / r['cp']:.2f}x "
              f"| {r['check']:.1f} ms | {r['get']:.2f} ms | {r['render_rss']:.1f} MiB "
              f"| {r['check_rss']:.1f} MiB | {r['get_rss']:.1f} MiB |")
    print("\nrender with Mage's own selection (no --include): "
          + ", ".join(f"{r['render_mage']:.1f} ms at {n:,} files ({r['render_mage'] / r['cp']:.2f}x cp -r)"
                      for n, r in rows))
    if len(rows) > 1:
        (n1, r1), (n2, r2) = rows[0], rows[-1]
        print(f"\nscaling: render {r1['render']:.1f} ms at {n1:,} files -> {r2['render']:.1f} ms at {n2:,} "
              f"({r2['render'] / r1['render']:.1f}x for {n2 / n1:.0f}x the files)")
    if args.pipeline_scaling:
        n = args.sizes[-1]
        times = []
        for p in args.pipeline_scaling:
            work = tempfile.mkdtemp(prefix=f"mage-secrets-bench-{n}-p{p}-", dir=args.dir)
            try:
                generate(work, n, args, p)
                times.append(measure_tree(work, max(5, args.runs // 2), full=False)["render"])
            finally:
                shutil.rmtree(work, ignore_errors=True)
        (a, b), (ta, tb) = args.pipeline_scaling, times
        print(f"pipelines: {n:,} files in {a:,} pipeline folders {ta:.1f} ms, in {b:,} {tb:.1f} ms "
              f"({(tb / ta - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
