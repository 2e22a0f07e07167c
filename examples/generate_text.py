"""Generate text with the pretrained decoder, trained on Python's own manual.

    KERAS_BACKEND=torch python examples/generate_text.py "The with statement"
    python examples/generate_text.py "A list comprehension" --sampler greedy

`transformer-decoder-small.python-docs` is a byte-level GPT-style model: the
prompt is read as UTF-8 bytes and the continuation comes back as text. The
default samples from the 5 likeliest bytes at each step (keras_hub's TopKSampler)
with `--seed`, so a run can be repeated; greedy and beam search are deterministic.
"""

import argparse

import zoo

PRESET = "transformer-decoder-small.python-docs"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="The with statement")
    # Greedy and beam search loop on a model this small ("the same of the same..."); sampling does not.
    parser.add_argument("--sampler", default="top_k", choices=["greedy", "top_k", "top_p", "random", "beam"])
    parser.add_argument("--max-length", type=int, default=120, help="prompt plus continuation, in bytes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = zoo.load(PRESET)
    bits = zoo.info(PRESET).metrics["test"]["bits_per_byte"]
    print(f"{PRESET}: {model.count_params():,} parameters, {bits:.2f} bits per byte on held-out topics")
    text = model.generate(args.prompt, max_length=args.max_length, sampler=args.sampler, seed=args.seed)
    print(f"\n{text}")
    return text


if __name__ == "__main__":
    main()
