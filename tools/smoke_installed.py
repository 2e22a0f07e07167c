"""Smoke-test an installed keras-zoo, the way a user of `pip install keras-zoo` meets it.

    cd "$(mktemp -d)" && python /path/to/tools/smoke_installed.py

Run it from a folder outside the checkout, with the interpreter of a fresh
environment where the wheel was installed (not editable): it fails if `zoo`
is imported from a source tree, then builds every tiny preset and runs it
(predict, and generate for the generative families), loads each pretrained
preset from the weights shipped in the wheel, and runs the `zoo` command.
`.ci/run` does this after building the wheel.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np


def check_installed(zoo):
    """`zoo` comes from this environment's site-packages, not a checkout."""
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    location = Path(zoo.__file__).resolve()
    if site_packages not in location.parents:
        sys.exit(f"zoo was imported from {location}, not from {site_packages}: run this outside the checkout.")
    print(f"zoo {zoo.__version__} from {location.parent}")


def check_presets(zoo):
    """Every tiny preset builds and runs; every pretrained one loads its shipped weights."""
    for name in zoo.list_presets("*-tiny"):
        model = zoo.load(name)
        x, _ = model.example_batch(batch_size=2)
        outputs = model.predict(x, verbose=0)
        assert np.isfinite(outputs).all(), name
        if hasattr(model, "generate"):
            prompt = x["encoder_token_ids"] if isinstance(x, dict) else x[:, :4]
            tokens = model.generate(prompt, max_length=8)
            assert tokens.shape == (2, 8), (name, tokens.shape)
        print(f"  {name}: predict {outputs.shape}" + (", generate ok" if hasattr(model, "generate") else ""))
    for name in zoo.list_presets(pretrained=True, checkpoint=False):
        model = zoo.load(name)
        print(f"  {name}: pretrained weights from {zoo.info(name).weights['folder']}/")
    dates = zoo.load("transformer-small").generate(["5. März 2021"])
    assert dates == ["2021-03-05"], dates


def check_command_line():
    """The `zoo` script of this environment answers."""
    script = Path(sys.executable).parent / "zoo"
    for argv in (["list"], ["info", "transformer-small"], ["download", "dense-small.breast-cancer", "--quiet"]):
        result = subprocess.run([str(script), *argv], capture_output=True, text=True)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
        print(f"  zoo {' '.join(argv)}: ok")


def main():
    import zoo

    check_installed(zoo)
    print(f"backend: {os.environ.get('KERAS_BACKEND', 'tensorflow (Keras default)')}")
    check_presets(zoo)
    check_command_line()
    print("the installed wheel works")


if __name__ == "__main__":
    main()
