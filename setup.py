"""The package list, which pyproject.toml cannot say alone: every package under
zoo/ (found, never listed by hand: a forgotten one is missing from the wheel
while an editable install still works), plus the preset cards, which live at
the top of the repository and ship inside the package as zoo._cards.
Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["zoo", "zoo.*"]), "zoo._cards"],
    package_dir={"zoo._cards": "presets"},
)
