"""Run every benchmark of issue 6 and write docs/benchmarks.md + docs/bench/*.png.

    .venv/bin/python bench/bench_all.py                 # everything (~15 min on 2 cores)
    .venv/bin/python bench/bench_all.py --only step,e2e # a subset; the report uses the other parts' last results
    .venv/bin/python bench/bench_all.py --report-only   # rewrite the report from the last results

Each benchmark runs as its own subprocess (bench_step.py imports TensorFlow; the others must
not) and leaves its JSON in --results (default $STATECAST_BENCH_CACHE/results).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import CACHE, ROOT  # noqa: E402
import bench_report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = {
    "step": ["bench_step.py", "--repeats", "9"],
    "e2e": ["bench_e2e.py", "--repeats", "3"],
    "memory": ["bench_memory.py"],
    # configuration variants vs the echo baseline (bench_patches.py; echo itself is always run)
    "variants": ["bench_patches.py", "compare", "--variants", "base,base@3.1.1,echo@3.1.1", "--repeats", "3"],
    "variants_qos1": ["bench_patches.py", "compare", "--qos", "1", "--variants",
                      "base,base+nofsync,base+nojournal,base+fq2,base+fq2+nofsync", "--repeats", "3"],
}


def run_step(name: str, results: str) -> float:
    out = os.path.join(results, f"{name}.json")
    started = time.monotonic()
    print(f"bench_all: {name} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, os.path.join(HERE, STEPS[name][0])] + STEPS[name][1:] + ["--out", out],
                   check=True, cwd=ROOT)
    elapsed = time.monotonic() - started
    print(f"bench_all: {name} took {elapsed:.0f} s", file=sys.stderr, flush=True)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join(CACHE, "results"))
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    args = parser.parse_args(argv)
    os.makedirs(args.results, exist_ok=True)
    durations_path = os.path.join(args.results, "durations.json")
    durations = json.load(open(durations_path)) if os.path.exists(durations_path) else {}
    durations = {k: v for k, v in durations.items() if k in STEPS}         # older suites had other parts
    if not args.report_only:
        names = [n for n in args.only.split(",") if n]
        unknown = [n for n in names if n not in STEPS]
        if unknown:
            parser.error(f"--only: unknown {unknown}; known: {', '.join(STEPS)}")
        for name in names:
            durations[name] = run_step(name, args.results)
            with open(durations_path, "w") as handle:
                json.dump(durations, handle)
    bench_report.write(args.results, args.docs)
    print(f"bench_all: wrote {os.path.join(args.docs, 'benchmarks.md')} and {os.path.join(args.docs, 'bench')}/*.png",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
