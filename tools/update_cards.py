"""Recompute the derived fields of every preset card: `params` and `inputs`.

Cards are edited by hand; this fills in what must agree with the built model,
so the numbers in cards and in the README can be trusted (a test checks them).

    python tools/update_cards.py          # rewrite presets/*.json
    python tools/update_cards.py --check  # exit 1 if any card is stale
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.architectures.config import config_to_dict  # noqa: E402  (imports no backend)

PRESETS = Path(__file__).resolve().parent.parent / "presets"


def derived_fields(model):
    """The card fields that follow from a built model (config: every key, spelled out)."""
    inputs = {
        tensor.name: {"shape": list(tensor.shape), "dtype": tensor.dtype}
        for tensor in model.inputs
    }
    return {
        "config": config_to_dict(model.zoo_config),
        "inputs": inputs,
        "params": int(model.count_params()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale cards")
    args = parser.parse_args(argv)

    import zoo  # after argparse, so --help stays instant

    stale = []
    for path in sorted(PRESETS.glob("*.json")):
        card = json.loads(path.read_text())
        fields = derived_fields(zoo.load(card["name"], pretrained=False))
        if {key: card[key] for key in fields} != fields:
            stale.append(path.name)
            if not args.check:
                card.update(fields)
                path.write_text(json.dumps(card, indent=2) + "\n")
    verb = "stale" if args.check else "updated"
    print(f"{len(stale)} card(s) {verb}: {', '.join(stale) or '-'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
