"""Where the time goes: the operators a compiled step spends it on, per
backend (XLA's op table on JAX and TensorFlow, torch's profiler), for
`zoo bench --profile`.
"""

from pathlib import Path


def operator_profile(run, argument, top=25):
    """The backend's own per-operator time table for `run(argument)`, as text:
    torch.profiler's on torch, XLA's operations (from a jax.profiler trace) on
    jax; "" on tensorflow, whose graph runtime cProfile sees as one call."""
    import keras

    if keras.backend.backend() == "jax":
        return _xla_operator_table(run, argument, top)
    if keras.backend.backend() != "torch":
        return ""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as profiler:
        run(argument)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def _xla_operator_table(run, argument, top):
    """Time per XLA operation kind of `run(argument)` on jax, summed over the
    threads that run compiled programs. jax has no text report of its own
    (its traces are read with TensorBoard or Perfetto), so this one reads the
    trace with `jax.profiler.ProfileData`."""
    import collections
    import re
    import tempfile

    import jax

    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            run(argument)
        trace = jax.profiler.ProfileData.from_file(str(next(Path(folder).rglob("*.xplane.pb"))))
    seconds, calls = collections.Counter(), collections.Counter()
    for plane in trace.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):  # the threads of XLA's CPU and device clients
                continue
            # Kinds of operation: "convolution.12" -> "convolution".
            operations = [
                (re.sub(r"\.\d+$", "", event.name), event.start_ns, event.duration_ns)
                for event in line.events
                # the executor's markers and waits are not operations
                if not event.name.startswith(("ThreadpoolListener", "ThunkExecutor", "SlinkyThreadPool", "end: "))
            ]
            for kind, own_ns in own_times(operations):
                seconds[kind] += own_ns / 1e9
                calls[kind] += 1
    total = sum(seconds.values()) or 1.0
    lines = [
        f"XLA operations, own time (without nested operations) summed over threads: {total:.3f} s",
        f"{'seconds':>9} {'share':>6} {'calls':>7}  operation",
    ]
    for kind, spent in seconds.most_common(top):
        lines.append(f"{spent:9.3f} {spent / total:6.1%} {calls[kind]:7d}  {kind}")
    return "\n".join(lines) + "\n"


def own_times(events):
    """`(name, own_ns)` for each `(name, start_ns, duration_ns)` event of one
    thread: its duration less that of the events it encloses. A loop's or a
    call's event in a trace encloses its body's events; summing plain
    durations would count the body twice.

    Example:
    >>> own_times([("while", 0, 100), ("dot", 10, 30), ("add", 50, 10)])
    [('while', 60), ('dot', 30), ('add', 10)]
    """
    result, enclosing = [], []  # enclosing: (end_ns, index in result) of the open events
    for name, start, duration in sorted(events, key=lambda event: (event[1], -event[2])):
        while enclosing and enclosing[-1][0] <= start:
            enclosing.pop()
        if enclosing:
            parent = enclosing[-1][1]
            result[parent] = (result[parent][0], result[parent][1] - duration)
        enclosing.append((start + duration, len(result)))
        result.append((name, duration))
    return result
