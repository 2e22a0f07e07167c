"""Run the whole test suite once per Keras backend and fail if any run fails.

    python tools/test_backends.py                 # tensorflow, jax, torch
    python tools/test_backends.py --backends jax  # just one
    python tools/test_backends.py -- -k generate  # extra arguments go to pytest
    python tools/test_backends.py --jobs 2        # two backends at a time

Each backend runs in its own pytest process (Keras fixes its backend at import
time). A run that collects no test counts as a failure. With --jobs N, N
backends run side by side, slowest (JAX) first, each writing its output to a
log that is printed when it ends; on two cores this shortens the whole run
because much of JAX's time is single-threaded XLA compilation.
"""

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = Path(__file__).resolve().parent.parent


def junit_counts(path):
    """(passed, failed, skipped) from a pytest JUnit XML report."""
    suite = ElementTree.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    return total - failed - skipped, failed, skipped


def run_backend(backend, pytest_args, report_dir, capture=False, threads=None):
    """Run pytest on one backend; with `capture`, print its output only when it ends.

    `threads` caps the CPU threads of torch and TensorFlow's op pools, so that
    backends running side by side do not oversubscribe the cores.
    """
    report = Path(report_dir) / f"{backend}.xml"
    env = {**os.environ, "KERAS_BACKEND": backend}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads))
    command = [sys.executable, "-m", "pytest", f"--junitxml={report}", *pytest_args]
    header = f"\n=== KERAS_BACKEND={backend}: {' '.join(command[1:])}"
    start = time.perf_counter()
    if capture:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        print(f"{header}\n{result.stdout}", flush=True)
    else:
        print(header, flush=True)
        result = subprocess.run(command, cwd=ROOT, env=env)
    counts = junit_counts(report) if report.exists() else (0, 0, 0)
    return result.returncode, counts, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--jobs", type=int, default=1, help="backends to run at the same time")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory() as report_dir:
        if args.jobs == 1:
            for backend in args.backends:
                results[backend] = run_backend(backend, ["-q", *args.pytest_args], report_dir)
        else:
            ordered = sorted(args.backends, key=lambda b: b != "jax")  # the longest run starts first
            threads = max(1, (os.cpu_count() or 1) // args.jobs)
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                futures = {b: pool.submit(run_backend, b, ["-q", *args.pytest_args], report_dir, True, threads)
                           for b in ordered}
                results = {b: futures[b].result() for b in args.backends}

    print("\n=== summary")
    failed_backends = []
    for backend, (code, (passed, failed, skipped), seconds) in results.items():
        ok = code == 0 and passed > 0
        if not ok:
            failed_backends.append(backend)
        print(f"{backend:>10}: {'ok' if ok else 'FAILED'} (exit {code}) "
              f"{passed} passed, {failed} failed, {skipped} skipped in {seconds:.0f}s")
    passed = sum(r[1][0] for r in results.values())
    failed = sum(r[1][1] for r in results.values())
    skipped = sum(r[1][2] for r in results.values())
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
    if failed_backends:
        print(f"failed backends: {', '.join(failed_backends)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
