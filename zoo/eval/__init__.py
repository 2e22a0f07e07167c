"""Evaluation: `zoo.evaluate` (evaluation.py), its scorers and reports, the
pretrained presets' published results (published.py), and `zoo bench`
(bench.py, with profiling.py)."""
