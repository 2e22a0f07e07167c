"""The data sets behind the pretrained presets: fixed splits, fingerprints, baselines."""

import datetime

import numpy as np
import pytest

import zoo
from zoo.data import datasets
from zoo.eval import published


@pytest.mark.backend_free
@pytest.mark.parametrize("name", datasets.dataset_names())
def test_splits_are_rebuilt_identically_and_do_not_overlap(name):
    first = datasets._BUILDERS[name]()  # built twice, bypassing the cache
    again = datasets._BUILDERS[name]()
    assert first.fingerprints() == again.fingerprints()
    assert set(first.splits) == set(datasets.SPLITS) and all(len(split) for split in first.splits.values())
    texts = {split: {repr(example) for example in _examples(first.splits[split])} for split in first.splits}
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]


def _examples(split):
    inputs = split.inputs
    return [row.tobytes() for row in inputs] if isinstance(inputs, np.ndarray) else list(inputs)


@pytest.mark.backend_free
def test_a_fingerprint_changes_with_one_example():
    data = datasets.load_dataset("breast-cancer")
    test = data.splits["test"]
    changed = datasets.Dataset(**{**data.__dict__, "splits": {
        **data.splits, "test": datasets.Split(test.inputs.copy(), test.targets.copy())}})
    assert changed.fingerprint("test") == data.fingerprint("test")
    changed.splits["test"].targets[0] = 1 - changed.splits["test"].targets[0]
    assert changed.fingerprint("test") != data.fingerprint("test")


@pytest.mark.backend_free
def test_dates_targets_are_the_iso_form_of_their_source():
    data = datasets.load_dataset("dates")
    for source, target in zip(data.splits["test"].inputs[:200], data.splits["test"].targets[:200]):
        day = datetime.date.fromisoformat(target)
        assert datasets.DATE_RANGE[0] <= day <= datasets.DATE_RANGE[1]
        assert str(day.year) in source  # two-digit years were drawn again
    non_latin_texts = [text for text in data.splits["train"].inputs if any(ch > "\u0400" for ch in text)]
    assert len(non_latin_texts) > 1000  # Cyrillic, Greek, CJK... not only Latin script


@pytest.mark.backend_free
def test_python_text_is_split_by_document_name():
    import pydoc_data.topics

    docs = datasets.load_dataset("python-docs")
    topics = pydoc_data.topics.topics
    assert sum(len(split) for split in docs.splits.values()) == len(set(topics.values()))
    first_name = {}
    for topic, text in sorted(topics.items()):
        first_name.setdefault(text, topic)
    for text, topic in first_name.items():
        assert text in docs.splits[datasets.hashed_split(topic)].inputs
    docstrings = datasets.load_dataset("python-docstrings")
    assert docstrings.label_names == tuple(datasets.DOCSTRING_TOPICS)
    assert set(docstrings.splits["test"].targets.tolist()) == set(range(len(docstrings.label_names)))


@pytest.mark.backend_free
def test_majority_baseline_matches_scikit_learn():
    from sklearn.dummy import DummyClassifier

    data = datasets.load_dataset("digits")
    train, test = data.splits["train"], data.splits["test"]
    dummy = DummyClassifier(strategy="most_frequent").fit(train.inputs.reshape(len(train), -1), train.targets)
    expected = dummy.score(test.inputs.reshape(len(test), -1), test.targets)
    assert published.baseline(data)["metrics"]["accuracy"] == pytest.approx(expected)


def test_unigram_and_copy_baselines():
    docs = published.baseline(datasets.load_dataset("python-docs"))["metrics"]["bits_per_byte"]
    assert 3.5 < docs < 6.0  # English text: well under 8 bits, far above a real model
    dates = datasets.load_dataset("dates")
    copy = published.baseline(dates)["metrics"]
    test = dates.splits["test"]
    assert copy["exact_match"] == pytest.approx(np.mean([s == t for s, t in zip(test.inputs, test.targets)]))
    assert 0.5 < copy["cer"]


@pytest.mark.backend_free
def test_unknown_data_set_names_the_known_ones():
    with pytest.raises(zoo.InvalidConfigError, match="dates"):
        datasets.load_dataset("imagenet")
