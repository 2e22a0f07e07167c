"""Documentation that must stay true: the generated tables, the code, links and
module names of README.md and docs/, every docstring example of the zoo
package, and the examples."""

import doctest
import importlib
import importlib.util
import pkgutil
import re
import runpy
from pathlib import Path

import pytest

from tools import deployment_table, quantized_results, readme_table

ROOT = Path(__file__).resolve().parent.parent
# The documentation: the front page, the contributors' guide and the pages it links to.
DOC_FILES = sorted(
    path.relative_to(ROOT).as_posix()
    for path in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *ROOT.glob("docs/*.md"),
                 ROOT / "benchmarks" / "README.md", ROOT / "examples" / "README.md"]
    if path.is_file()
)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", flags=re.S)
CODE_BLOCK = re.compile(r"```.*?```", flags=re.S)


def python_blocks(doc):
    return PYTHON_BLOCK.findall((ROOT / doc).read_text())


DOCS_WITH_CODE = [doc for doc in DOC_FILES if python_blocks(doc)]


def zoo_modules(package="zoo", folder=ROOT / "zoo"):
    """Every module of the zoo package, found by pkgutil in its folders: names
    only, nothing is imported while tests are collected."""
    names = [package]
    for module in pkgutil.iter_modules([str(folder)]):
        name = f"{package}.{module.name}"
        if module.ispkg:
            names += zoo_modules(name, folder / module.name)
        elif name != "zoo.__main__":  # `python -m zoo`: importing it runs the command
            names.append(name)
    return names


ZOO_MODULES = zoo_modules()
# The tools whose docstrings hold examples (read as text: collecting imports nothing).
TOOL_MODULES = sorted(f"tools.{path.stem}" for path in (ROOT / "tools").glob("*.py") if ">>>" in path.read_text())
# A module that imports one of these at the top may be skipped where it is not installed.
OPTIONAL_DEPENDENCIES = {"tensorflow", "jax", "torch", "huggingface_hub", "kagglehub"}


def import_module(name):
    """The module `name`, or None (with the reason) when it needs an optional
    dependency that is not installed; any other failure to import is raised."""
    try:
        return importlib.import_module(name), None
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in OPTIONAL_DEPENDENCIES:
            raise
        return None, f"{name} needs {missing}, an optional dependency that is not installed"


def forget_example_presets():
    import zoo

    for name in ("dense-tiny.wide",):  # registered by a docstring and a docs example
        if name in zoo.list_presets():
            zoo.unregister_preset(name)


@pytest.mark.backend_free
@pytest.mark.parametrize("path", readme_table.DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_generated_tables_match_the_cards_and_results(path):
    assert readme_table.with_tables(path) == path.read_text(), "run: python tools/readme_table.py"


@pytest.mark.backend_free
def test_the_deployment_table_is_the_recorded_routes():
    page = deployment_table.PAGE.read_text()
    rows = deployment_table.read_rows(deployment_table.CSV_PATH)
    assert deployment_table.with_table(page, rows) == page, "run: python tools/deployment_table.py"
    assert {row["status"] for row in rows} <= {"works", "refused"}, "a route failed: fix it or record the limit"


@pytest.mark.backend_free
def test_the_quantization_table_and_cards_are_the_recorded_results():
    import json

    rows = quantized_results.read_rows(quantized_results.CSV_PATH)
    page = quantized_results.PAGE.read_text()
    assert quantized_results.with_table(page, rows) == page, "run: python tools/quantized_results.py --render"
    for row in rows:
        if row["mode"] != "float32":
            card = json.loads((ROOT / "presets" / f"{row['preset']}.json").read_text())
            assert card["metrics"]["quantized"][row["mode"]][row["metric"]] == row["value"], row


@pytest.mark.parametrize("module_name", ZOO_MODULES)
def test_docstring_examples_run(module_name):
    module, missing = import_module(module_name)
    if module is None:
        pytest.skip(missing)
    try:
        result = doctest.testmod(module, verbose=False, optionflags=doctest.ELLIPSIS)
    finally:
        forget_example_presets()
    assert result.failed == 0


@pytest.mark.parametrize("module_name", TOOL_MODULES)
def test_tool_docstring_examples_run(module_name):
    result = doctest.testmod(importlib.import_module(module_name), verbose=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_docstrings_hold_examples():
    """Discovery found the package: its modules hold over 200 docstring examples
    together (a floor of 100 leaves room for rewrites, not for finding none)."""
    assert {"zoo", "zoo.registry", "zoo.architectures.base", "zoo.layers"} <= set(ZOO_MODULES)
    examples = 0
    for name in ZOO_MODULES:
        module, _ = import_module(name)
        if module is not None:
            examples += sum(len(test.examples) for test in doctest.DocTestFinder().find(module))
    assert examples >= 100, f"only {examples} docstring examples in {len(ZOO_MODULES)} modules"


def _readme_ran(namespace, folder):
    assert namespace["tokens"].shape == (1, 12)
    assert namespace["classifier"].output_shape == (None, 5)


def _finetuning_ran(namespace, folder):
    import zoo

    assert namespace["report"].metrics["accuracy"] > 0.6  # three classes: chance is 1/3
    assert zoo.load(folder / "iris-dense").label_names == ["setosa", "versicolor", "virginica"]
    assert (folder / "iris-report" / "training_curves.png").is_file()
    assert not any("lora" in v.path for v in namespace["merged"].variables)
    assert namespace["ids"].shape == (1, 8)


def _evaluation_ran(namespace, folder):
    assert namespace["report"].metrics["accuracy"] > 0.95  # published 0.9825
    assert (folder / "breast-cancer-report" / "report.json").is_file()
    assert namespace["check"].within_tolerance


def _presets_and_hub_ran(namespace, folder):
    assert (folder / "my-preset" / "manifest.json").is_file()
    assert namespace["restored"].count_params() > 0
    assert tuple(namespace["model"].zoo_config.hidden_units) == (256,)  # dense-tiny.wide


# What each page's code leaves behind, checked once it ran.
EXPECTED = {
    "README.md": _readme_ran,
    "docs/finetuning.md": _finetuning_ran,
    "docs/evaluation.md": _evaluation_ran,
    "docs/presets-and-hub.md": _presets_and_hub_ran,
}


@pytest.mark.backend_free
def test_the_checked_pages_hold_code():
    assert set(EXPECTED) <= set(DOCS_WITH_CODE)


@pytest.mark.parametrize("doc", DOCS_WITH_CODE)
def test_doc_python_examples_run(doc, tmp_path, monkeypatch):
    """Every ```python block of a page runs, in order, in one namespace per page."""
    monkeypatch.chdir(tmp_path)  # the examples save files
    namespace = {}
    try:
        for block in python_blocks(doc):
            exec(compile(block, doc, "exec"), namespace)
    finally:
        forget_example_presets()
    if doc in EXPECTED:
        EXPECTED[doc](namespace, tmp_path)


def _slug(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path):
    text = CODE_BLOCK.sub("", path.read_text())
    return {_slug(heading) for heading in re.findall(r"(?m)^#+ (.+)$", text)}


@pytest.mark.backend_free
@pytest.mark.parametrize("doc", DOC_FILES)
def test_doc_links_lead_somewhere(doc):
    """Every relative link names a file of the checkout, and its #anchor a heading there."""
    path = ROOT / doc
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", CODE_BLOCK.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (anchor and anchor not in _anchors(linked)):
            broken.append(target)
    assert not broken, f"{doc}: broken links {broken}"


def _names_something(dotted):
    """Whether `dotted` (zoo.x.y.name) is a module of the zoo or an attribute of one.
    A module is found without importing it (zoo.__main__ would run the command)."""
    parts = dotted.split(".")
    length = 1  # the longest prefix that is a module
    while length < len(parts) and importlib.util.find_spec(".".join(parts[:length])).submodule_search_locations:
        if importlib.util.find_spec(".".join(parts[: length + 1])) is None:
            break
        length += 1
    target = importlib.import_module(".".join(parts[:length])) if length < len(parts) else None
    for attribute in parts[length:]:
        if not hasattr(target, attribute):
            return False
        target = getattr(target, attribute)
    return True


# The model cards shipped in the pretrained presets' folders: documentation too.
MODEL_CARDS = sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("presets/*/README.md"))


@pytest.mark.parametrize("doc", DOC_FILES + MODEL_CARDS)
def test_doc_module_names_exist(doc):
    """The files (zoo/x/y.py, zoo/x/) and dotted names (zoo.x.y.name) a page names exist."""
    text = (ROOT / doc).read_text()
    missing = [
        name for name in re.findall(r"(?<![\w/.$-])zoo/[\w/]*(?:\.py|/)", text)
        if not (ROOT / name).exists()
    ]
    missing += [
        name for name in sorted(set(re.findall(r"(?<![\w/.$-])zoo(?:\.\w+)+", text)))
        if not _names_something(name)
    ]
    assert not missing, f"{doc} names what does not exist: {missing}"


def test_digits_example_learns():
    example = runpy.run_path(str(ROOT / "examples" / "train_digits_cnn.py"))
    accuracy = example["main"](["--epochs", "3"])
    assert accuracy > 0.5  # ten classes: chance is 0.1


def test_publish_and_load_example_round_trips():
    example = runpy.run_path(str(ROOT / "examples" / "publish_and_load_preset.py"))
    assert example["main"]() is True


def test_cnn_new_head_example_transfers():
    example = runpy.run_path(str(ROOT / "examples" / "finetune_cnn_new_head.py"))
    accuracy = example["main"](["--pretrain-epochs", "4", "--pretrain-size", "300", "--epochs", "8"])
    assert accuracy["transferred"] > 0.4  # five classes: chance is 0.2


def test_text_classifier_example_learns():
    example = runpy.run_path(str(ROOT / "examples" / "finetune_text_classifier.py"))
    report = example["main"](["--epochs", "6", "--max-length", "32"])
    assert report.metrics["accuracy"] > 0.5  # four balanced classes: chance is 0.25


def test_quickstart_example_rewrites_dates():
    example = runpy.run_path(str(ROOT / "examples" / "quickstart.py"))
    assert example["main"](["5. März 2021", "vendredi 14 juillet 1989"]) == ["2021-03-05", "1989-07-14"]


def test_generate_text_example_continues_the_prompt():
    example = runpy.run_path(str(ROOT / "examples" / "generate_text.py"))
    text = example["main"](["The with statement", "--max-length", "48"])
    assert text.startswith("The with statement") and len(text.encode()) > len("The with statement")
