"""Run a measuring tool's child process and read back the JSON it printed last.

The tools measure each backend in a fresh process (Keras fixes its backend at
import time, and a cold start must be cold). Frameworks log to stderr and to
stdout, so the child prints its result as one JSON line, and this reads the
last such line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def last_json(command, what, timeout_s, environment=None):
    """The JSON value `command` printed last on stdout (a line starting with
    "[" or "{"), or None after saying on stderr why there is none: it failed,
    printed nothing, or ran past `timeout_s`.

    The child runs in the checkout with it on PYTHONPATH, `environment` added to
    this process's, and TensorFlow's start-up logging off.

    Example:
    >>> last_json([sys.executable, "-c", "print('noise'); print('[1, 2]')"], "a child", 60)
    [1, 2]
    """
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(environment or {})}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout_s, cwd=ROOT,
                              check=False)
    except subprocess.TimeoutExpired:
        print(f"{what}: no result after {timeout_s} s", file=sys.stderr)
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith(("[", "{"))]
    if done.returncode or not lines:
        print(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])
