"""Run the whole test suite: the backend-free tier once, then the rest once per
Keras backend; fail if any run fails.

    python tools/test_backends.py                 # backend-free tier, then tensorflow, jax, torch
    python tools/test_backends.py --fast          # the backend-free tier alone (under a minute)
    python tools/test_backends.py --backends jax  # the backend-free tier, then one backend
    python tools/test_backends.py -- -k generate  # extra arguments go to pytest
    python tools/test_backends.py --jobs 2        # two backends at a time

The backend-free tier is every test marked `backend_free` (tests/conftest.py):
it runs in one process that must never import Keras or a framework. Each
backend runs in its own pytest process (Keras fixes its backend at import
time). A run that collects no test counts as a failure. With --jobs N, N
backends run side by side, slowest (JAX) first, each writing its output to a
log that is printed when it ends (on a 2-core machine this measured slower
than one at a time: 78 against about 55 minutes). Each tier ends with its
slowest test files: where CI's time goes.
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
BACKEND_FREE = "backend-free"  # the tier of tests that need no backend, run once
ROOT = Path(__file__).resolve().parent.parent


def junit_counts(path):
    """(passed, failed, skipped) from a pytest JUnit XML report."""
    suite = ElementTree.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    return total - failed - skipped, failed, skipped


def seconds_by_file(path, count=8):
    """The `count` test files that took longest in a pytest JUnit XML report,
    as (file, seconds, tests), longest first: where CI's time goes.

    Example:
    >>> import tempfile
    >>> report = Path(tempfile.mkdtemp()) / "report.xml"
    >>> _ = report.write_text('<testsuite><testcase classname="tests.test_a" time="2.5"/>'
    ...                       '<testcase classname="tests.test_a" time="1"/><testcase classname="tests.test_b" '
    ...                       'time="4"/></testsuite>')
    >>> seconds_by_file(report)
    [('tests/test_b.py', 4.0, 1), ('tests/test_a.py', 3.5, 2)]
    """
    totals = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        file = case.get("classname", "").replace(".", "/") + ".py"
        seconds, tests = totals.get(file, (0.0, 0))
        totals[file] = (seconds + float(case.get("time", 0)), tests + 1)
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:count]
    return [(file, round(seconds, 2), tests) for file, (seconds, tests) in ranked]


def run_backend(backend, pytest_args, report_dir, capture=False, threads=None):
    """Run pytest on one backend (or, for BACKEND_FREE, the backend-free tier);
    with `capture`, print its output only when it ends.

    `threads` caps the CPU threads of torch and TensorFlow's op pools, so that
    backends running side by side do not oversubscribe the cores.
    """
    report = Path(report_dir) / f"{backend}.xml"
    if backend == BACKEND_FREE:
        env, pytest_args = dict(os.environ), ["--tier", "backend-free", *pytest_args]
    else:
        env, pytest_args = {**os.environ, "KERAS_BACKEND": backend}, ["--tier", "backends", *pytest_args]
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads))
    # The slowest tests named in every log: where CI's time goes (it must stay under 40 minutes).
    command = [sys.executable, "-m", "pytest", f"--junitxml={report}", "--durations=15", *pytest_args]
    label = "the backend-free tier" if backend == BACKEND_FREE else f"KERAS_BACKEND={backend}"
    header = f"\n=== {label}: {' '.join(command[1:])}"
    start = time.perf_counter()
    if capture:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        print(f"{header}\n{result.stdout}", flush=True)
    else:
        print(header, flush=True)
        result = subprocess.run(command, cwd=ROOT, env=env)
    counts = (0, 0, 0)
    if report.exists():
        counts, files = junit_counts(report), seconds_by_file(report)
        print(f"{label}: the slowest files\n" + "\n".join(f"{seconds:9.1f}s {tests:5d} tests  {file}"
                                                        for file, seconds, tests in files), flush=True)
    return result.returncode, counts, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--jobs", type=int, default=1, help="backends to run at the same time")
    parser.add_argument("--fast", action="store_true", help="run the backend-free tier alone")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory() as report_dir:
        results[BACKEND_FREE] = run_backend(BACKEND_FREE, ["-q", *args.pytest_args], report_dir)
        backends = [] if args.fast else args.backends
        if args.jobs == 1:
            for backend in backends:
                results[backend] = run_backend(backend, ["-q", *args.pytest_args], report_dir)
        else:
            ordered = sorted(backends, key=lambda b: b != "jax")  # the longest run starts first
            threads = max(1, (os.cpu_count() or 1) // args.jobs)
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                futures = {b: pool.submit(run_backend, b, ["-q", *args.pytest_args], report_dir, True, threads)
                           for b in ordered}
                results.update({b: futures[b].result() for b in backends})

    print("\n=== summary")
    failed_backends = []
    for backend, (code, (passed, failed, skipped), seconds) in results.items():
        ok = code == 0 and passed > 0
        if not ok:
            failed_backends.append(backend)
        print(f"{backend:>12}: {'ok' if ok else 'FAILED'} (exit {code}) "
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
