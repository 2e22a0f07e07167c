"""Max abs difference between converted checkpoints and transformers' torch
models, per model type, on the active backend (KERAS_BACKEND).

Random checkpoints of each type (tests/checkpoint_builders.py) are converted
by the zoo and run on inputs holding id 0 and padding; the figure is the
largest difference over real positions. docs/checkpoints.md publishes one run
per backend:

    KERAS_BACKEND=jax python tools/checkpoint_parity.py
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import keras  # noqa: E402
import torch  # noqa: E402
from checkpoint_builders import inputs_with_padding, save_checkpoint  # noqa: E402

import zoo  # noqa: E402

CASES = [("gpt2", "lm"), ("bert", "lm"), ("bert", "classifier"), ("roberta", "lm"), ("roberta", "classifier"),
         ("distilbert", "lm"), ("distilbert", "classifier")]


def difference(model_type, head, folder):
    folder, reference, _ = save_checkpoint(model_type, head, folder)
    model = zoo.load(str(folder))
    ids, mask = inputs_with_padding(reference.config.vocab_size, model.zoo_config.pad_token_id)
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids, dtype=torch.long),
                             attention_mask=torch.tensor(mask.astype("int64"))).logits.numpy()
    actual = np.asarray(model.predict({"token_ids": ids, "padding_mask": mask}, verbose=0))
    gap = np.abs(actual - expected)
    return float((gap[mask] if gap.ndim == 3 else gap).max())


def main():
    with tempfile.TemporaryDirectory() as root:
        print(f"| model type | head | max abs diff ({keras.backend.backend()}) |")
        print("|---|---|---|")
        for model_type, head in CASES:
            print(f"| {model_type} | {head} | {difference(model_type, head, Path(root) / (model_type + head)):.1e} |")


if __name__ == "__main__":
    main()
