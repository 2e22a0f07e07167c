"""Tokenizers as preset assets, text-in/text-out generation and beam search."""

import json
from pydoc_data.topics import topics

import keras
import numpy as np
import pytest
import scipy.special
from conftest import to_numpy

import zoo
from zoo.architectures import generation
from zoo.architectures.transformer import TransformerSeq2Seq
from zoo.architectures.transformer_decoder import TransformerDecoderLM
from zoo.data import special_tokens, tokenizers

SMALL_TRANSFORMER = dict(vocab_size=48, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0)
DOC_TOPICS = ("assert", "del", "for", "while", "lambda", "pass")
PROMPTS = ["the for statement", "while true: pass"]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a RaggedTensor is TensorFlow's own")
def test_a_ragged_prompt_is_padded_with_zeros():
    import tensorflow as tf

    prompt = generation.token_id_matrix(tf.ragged.constant([[5, 6, 7], [8]]), "prompt")
    np.testing.assert_array_equal(prompt, [[5, 6, 7], [8, 0, 0]])


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizers.train_tokenizer([topics[name] for name in DOC_TOPICS], vocab_size=300)


@pytest.fixture(scope="module")
def small_tokenizer():
    """One that fits the tiny models' 48-token embedding (and has whole words)."""
    tokenizer = tokenizers.train_tokenizer(PROMPTS * 10, vocab_size=48)
    assert tokenizer.vocabulary_size() <= SMALL_TRANSFORMER["vocab_size"]
    return tokenizer


@pytest.fixture(scope="module")
def decoder():
    keras.utils.set_random_seed(7)  # module fixtures are built before the per-test seeding
    return TransformerDecoderLM(num_layers=1, max_length=16, **SMALL_TRANSFORMER)


@pytest.fixture(scope="module")
def seq2seq():
    keras.utils.set_random_seed(8)
    return TransformerSeq2Seq(num_encoder_layers=1, num_decoder_layers=1, encoder_max_length=16,
                              decoder_max_length=12, **SMALL_TRANSFORMER)


def assert_same_words(decoded, text):
    """`decoded` splits `text`'s (case-folded) words into pieces but keeps every
    character, and no piece straddles two words."""
    pieces = iter(decoded.split())
    for word in text.casefold().split():
        rebuilt = ""
        while len(rebuilt) < len(word):
            rebuilt += next(pieces)
        assert rebuilt == word
    assert next(pieces, None) is None


def test_python_docs_round_trip(tokenizer):
    texts = [topics[name] for name in DOC_TOPICS]
    ids = tokenizers.encode(tokenizer, texts, length=1024)
    assert (ids[:, -1] == 0).all(), "a text was truncated; raise length"
    assert not (ids == special_tokens.UNKNOWN_ID).any()
    for decoded, text in zip(tokenizers.decode(tokenizer, ids), texts, strict=True):
        assert_same_words(decoded, text)


def test_saved_tokenizer_loads_back_the_same(tokenizer, tmp_path):
    folder = tokenizers.save_tokenizer(tokenizer, tmp_path / "assets" / "tokenizer")
    config = json.loads((folder / "tokenizer.json").read_text())
    assert config["type"] == "word_piece" and config["options"]["lowercase"] is True
    lines = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == tokenizer.get_vocabulary()
    restored = tokenizers.load_tokenizer(folder)
    assert restored.get_vocabulary() == tokenizer.get_vocabulary()
    text = topics["pass"]
    np.testing.assert_array_equal(tokenizers.encode(restored, text, 256),
                                  tokenizers.encode(tokenizer, text, 256))
    assert tokenizers.load_tokenizer(tmp_path) is None


def test_reserved_ids_are_the_zoo_ones(tokenizer):
    assert tokenizer.get_vocabulary()[:4] == ["[PAD]", "[START]", "[END]", "[UNK]"]
    assert (special_tokens.PAD_ID, special_tokens.START_ID, special_tokens.END_ID, special_tokens.UNKNOWN_ID) == (0, 1, 2, 3)
    assert (TransformerSeq2Seq.Config.start_token_id, TransformerSeq2Seq.Config.end_token_id) == (1, 2)
    ids = tokenizers.encode(tokenizer, ["[START] [PAD] assert", "\u20ac"], length=12,
                            add_start=True, add_end=True)
    # Written-out reserved tokens are plain text; a character never seen is unknown.
    assert (ids[0, 1:] != special_tokens.START_ID).all() and (ids[0] == special_tokens.END_ID).sum() == 1
    assert ids[1, :4].tolist() == [1, 3, 2, 0]
    word = tokenizers.encode(tokenizer, "assert", 4)[0]
    word = word[word != 0].tolist()
    rows = [[special_tokens.START_ID, *word, special_tokens.END_ID, *word], [*word, 0, *word, 0]]
    assert tokenizers.decode(tokenizer, rows) == ["assert", "assert"]  # stops at end/padding


def test_encode_pads_and_truncates(tokenizer):
    full = tokenizers.encode(tokenizer, ["assert x", "del x, y, z"], length=10)
    assert full.dtype == np.int32 and full.shape == (2, 10)
    lengths = (full != 0).sum(axis=1)
    assert lengths[0] < lengths[1] and (full[0, lengths[0]:] == 0).all()
    short = tokenizers.encode(tokenizer, "del x, y, z", length=4, add_start=True, add_end=True)
    assert short.shape == (1, 4)
    assert short[0].tolist() == [1, *full[1, :2].tolist(), 2]  # truncation keeps start and end


# On JAX every new input shape compiles every eager op again: the tests below
# keep to a few shapes (max_length 10 for the decoder, 3 for seq2seq; batch 2).


def test_decoder_returns_text_for_text_and_ids_for_ids(decoder, small_tokenizer):
    decoder.tokenizer = small_tokenizer
    text = decoder.generate(PROMPTS[1], max_length=10)
    ids = decoder.generate(tokenizers.encode(small_tokenizer, PROMPTS[1], 10, add_start=True), max_length=10)
    assert isinstance(text, str) and text.startswith("while true : pass")  # WordPiece spaces out punctuation
    assert isinstance(ids, np.ndarray) and ids.shape == (1, 10) and ids.dtype.kind == "i"
    assert tokenizers.decode(small_tokenizer, ids) == [text]


def test_seq2seq_returns_text_for_text_and_ids_for_ids(seq2seq, small_tokenizer):
    seq2seq.tokenizer = small_tokenizer
    texts = seq2seq.generate(PROMPTS, max_length=3)
    ids = seq2seq.generate(tokenizers.encode(small_tokenizer, PROMPTS, 16, add_end=True), max_length=3)
    assert isinstance(texts, list) and all(isinstance(text, str) for text in texts)
    assert isinstance(ids, np.ndarray) and ids.shape == (2, 3) and (ids[:, 0] == 1).all()
    assert tokenizers.decode(small_tokenizer, ids) == texts


def generated_log_probs(logits, tokens, prompt_lengths):
    """Each row's summed log-probability of its tokens after its prompt, where
    `logits[:, t]` predicts `tokens[:, t + 1]`.

    Padding gets no probability, as in generate(), which never samples it."""
    logits = np.array(logits, dtype="float64")  # float64, so sums compare finely
    logits[..., 0] = -np.inf
    log_probs = scipy.special.log_softmax(logits, axis=-1)
    scores = []
    for row, start in enumerate(prompt_lengths):
        positions = np.arange(start, tokens.shape[1])
        scores.append(log_probs[row, positions - 1, tokens[row, positions]].sum())
    return np.array(scores)


def test_decoder_beam_search(decoder):
    """One beam is greedy search; four beams score at least as well as greedy.

    Two new tokens: there beam search provably keeps greedy's path among its
    candidates (over longer outputs it usually beats greedy, but need not)."""
    prompt = np.array([[5, 6, 7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18, 19, 20]], "int32")
    greedy = decoder.generate(prompt, max_length=10)
    one_beam = decoder.generate(prompt, max_length=10, sampler="beam", num_beams=1)
    np.testing.assert_array_equal(one_beam, greedy)
    beam = decoder.generate(prompt, max_length=10, sampler="beam", num_beams=4)
    np.testing.assert_array_equal(beam[:, :8], prompt)
    beam_scores = generated_log_probs(to_numpy(decoder(beam)), beam, [8, 8])
    greedy_scores = generated_log_probs(to_numpy(decoder(greedy)), greedy, [8, 8])
    assert (beam_scores >= greedy_scores - 1e-4).all(), (beam_scores, greedy_scores)


def test_beam_search_in_a_ragged_batch_matches_an_even_one(decoder):
    """Beside a shorter prompt, the longer one is forced through the first
    steps; that must not skew its beams."""
    long_prompt = [5, 6, 7, 8]
    beam = dict(max_length=10, sampler="beam", num_beams=3)
    even = decoder.generate(np.array([long_prompt, long_prompt]), **beam)
    ragged = decoder.generate(np.array([long_prompt, [9, 0, 0, 0]]), **beam)
    np.testing.assert_array_equal(ragged[0], even[0])


def test_a_prompt_token_is_the_only_choice_where_its_prompt_goes_on():
    """What keeps beams scored on real tokens in a ragged batch: row 0 is still
    inside its prompt (token 4 comes next), row 1 is generating."""
    logits = np.random.default_rng(0).normal(size=(2, 6)).astype("float32")
    current = np.array([[4], [0]], "int32")
    is_prompt = np.array([[True], [False]])
    forced = to_numpy(generation.force_prompt_tokens(keras.ops.convert_to_tensor(logits),
                                                     keras.ops.convert_to_tensor(current),
                                                     keras.ops.convert_to_tensor(is_prompt)))
    np.testing.assert_allclose(scipy.special.softmax(forced[0]), np.eye(6)[4], atol=1e-6)
    np.testing.assert_array_equal(forced[1], logits[1])


def test_seq2seq_beam_search_repeats_the_encoder_state_per_beam(seq2seq):
    """Each source keeps its own encoder output, mask and cross-attention
    cache across its beams (two new tokens, as in the decoder test)."""
    source = np.array([[5, 6, 7, 0], [20, 21, 22, 23]], "int32")
    greedy = seq2seq.generate(source, max_length=3, stop_token_ids=None)
    beam_search = dict(max_length=3, stop_token_ids=None, sampler="beam", num_beams=3)
    beam = seq2seq.generate(source, **beam_search)
    same_sources = seq2seq.generate(source[[1, 1]], **beam_search)
    np.testing.assert_array_equal(beam[1], same_sources[1])

    def scores(tokens):
        logits = seq2seq({"encoder_token_ids": source, "decoder_token_ids": tokens[:, :-1]})
        return generated_log_probs(to_numpy(logits), tokens, [1, 1])

    assert (scores(beam) >= scores(greedy) - 1e-4).all(), (scores(beam), scores(greedy))


@pytest.mark.parametrize("sampler, options", [("top_k", {"k": 5}), ("top_p", {"p": 0.9}), ("random", {})])
def test_seeded_sampling_repeats_itself(decoder, sampler, options):
    prompt = np.array([[5, 6], [7, 0]], "int32")
    first = decoder.generate(prompt, max_length=10, sampler=sampler, seed=3, **options)
    second = decoder.generate(prompt, max_length=10, sampler=sampler, seed=3, **options)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (2, 10) and (first[:, 2:] != 0).all()


def test_text_generation_errors_are_clear(small_tokenizer, tokenizer):
    model = TransformerDecoderLM(num_layers=1, max_length=8, **SMALL_TRANSFORMER)
    with pytest.raises(zoo.InvalidConfigError, match="has no tokenizer.*model.tokenizer ="):
        model.generate("hello")
    model.tokenizer = tokenizer  # trained on the docs: too many tokens for a 48-token embedding
    size = tokenizer.vocabulary_size()
    with pytest.raises(zoo.InvalidConfigError, match=f"tokenizer has {size} tokens.*vocab_size=48"):
        model.generate(["hello"])
    with pytest.raises(zoo.InvalidConfigError, match="num_beams must be a positive integer"):
        model.generate(np.array([[3]]), sampler="beam", num_beams=0)
    with pytest.raises(zoo.InvalidConfigError, match="return_all_beams"):
        model.generate(np.array([[3]]), sampler="beam", return_all_beams=True)
    with pytest.raises(zoo.InvalidConfigError, match="sampler 'greedy' does not take the options \\['k'\\]"):
        model.generate(np.array([[3]]), sampler="greedy", k=3)
    seq2seq = TransformerSeq2Seq(num_encoder_layers=1, num_decoder_layers=1, start_token_id=4,
                                 end_token_id=5, **SMALL_TRANSFORMER)
    seq2seq.tokenizer = small_tokenizer
    with pytest.raises(zoo.InvalidConfigError, match=r"start_token_id/end_token_id = \(1, 2\)"):
        seq2seq.generate("hello")


def test_tokenizer_errors_are_clear(small_tokenizer, tmp_path):
    with pytest.raises(zoo.InvalidConfigError, match="not one string"):
        tokenizers.train_tokenizer("just one text", vocab_size=30)
    with pytest.raises(zoo.InvalidConfigError, match="vocab_size must be an integer above 4"):
        tokenizers.train_tokenizer(["a b"], vocab_size=4)
    with pytest.raises(zoo.InvalidConfigError, match="only strings; got 2 items, including int"):
        tokenizers.encode(small_tokenizer, ["a", 3], length=4)
    with pytest.raises(zoo.InvalidConfigError, match="length must be an integer of at least 2"):
        tokenizers.encode(small_tokenizer, "a", length=1, add_start=True, add_end=True)
    with pytest.raises(zoo.InvalidConfigError, match="integer token ids"):
        tokenizers.decode(small_tokenizer, np.zeros((1, 2, 3), "int32"))
    folder = tokenizers.save_tokenizer(small_tokenizer, tmp_path)
    config = json.loads((folder / "tokenizer.json").read_text())
    (folder / "tokenizer.json").write_text(json.dumps({**config, "type": "byte_pair"}))
    with pytest.raises(zoo.InvalidPresetError, match="tokenizer type 'byte_pair'.*known: word_piece"):
        tokenizers.load_tokenizer(folder)
    (folder / "tokenizer.json").write_text(json.dumps(config))
    vocabulary = (folder / "vocabulary.txt").read_text(encoding="utf-8")
    (folder / "vocabulary.txt").write_text(vocabulary.replace("[START]", "[CLS]"), encoding="utf-8")
    with pytest.raises(zoo.InvalidPresetError, match="must start with the reserved tokens"):
        tokenizers.load_tokenizer(folder)
    (folder / "vocabulary.txt").unlink()
    with pytest.raises(zoo.InvalidPresetError, match="vocabulary.txt is missing"):
        tokenizers.load_tokenizer(folder)


# --- inputs outside what the model reads ----------------------------------------


@pytest.mark.parametrize("ids", [[[5, 48]], [[5, -3]], [[4096, 5]]])
def test_generate_refuses_token_ids_outside_the_vocabulary(decoder, seq2seq, ids):
    """JAX gathered garbage embeddings for these; torch failed inside the embedding."""
    for model in (decoder, seq2seq):
        with pytest.raises(zoo.InvalidDataError, match=r"prompt: token ids must be in 0..47 \(the vocabulary\)"):
            model.generate(np.array(ids), max_length=6)


@pytest.mark.parametrize("max_length", [0, -1, 5.5, True, "8"])
def test_generate_refuses_a_max_length_that_is_not_a_positive_whole_number(decoder, seq2seq, max_length):
    for model in (decoder, seq2seq):
        with pytest.raises(zoo.InvalidConfigError, match=f"max_length={max_length!r} is out of range"):
            model.generate(np.array([[5, 6]]), max_length=max_length)


def test_generate_leaves_out_max_length_for_the_whole_context(decoder):
    assert decoder.generate(np.array([[5, 6]])).shape == (1, 16)


def test_text_longer_than_the_context_is_cut_with_a_warning(decoder, small_tokenizer, caplog):
    model = TransformerDecoderLM(num_layers=1, max_length=16, **SMALL_TRANSFORMER)
    model.tokenizer = small_tokenizer
    long_text = " ".join(["the for statement"] * 20)
    with caplog.at_level("WARNING", logger="zoo"):
        text = model.generate([long_text, "while"], max_length=16)
    assert "1 of 2 text(s) are longer than the 15 tokens that fit" in caplog.text
    assert len(text) == 2


def test_predict_refuses_ids_the_model_cannot_read(decoder, seq2seq):
    with pytest.raises(zoo.InvalidDataError, match="token ids must be in 0..47"):
        decoder.predict(np.array([[5, 99]]), verbose=0)
    with pytest.raises(zoo.InvalidDataError, match="has 17 positions, more than this model's context of 16"):
        decoder.predict(np.ones((1, 17), "int32"), verbose=0)
    source = {"encoder_token_ids": np.ones((1, 4), "int32"), "decoder_token_ids": np.full((1, 3), -1, "int32")}
    with pytest.raises(zoo.InvalidDataError, match=r"predict\(\) input\['decoder_token_ids'\]: token ids"):
        seq2seq.predict(source, verbose=0)


@pytest.mark.parametrize("options, message", [
    ({"sampler": "top_k", "k": 0}, r"k must be a whole number >= 1"),
    ({"sampler": "top_p", "p": 0.0}, r"p must be a probability in \(0, 1\]"),
    ({"sampler": "random", "temperature": 0}, "temperature must be a number > 0"),
])
def test_sampler_settings_that_cannot_sample_are_refused(decoder, options, message):
    with pytest.raises(zoo.InvalidConfigError, match=message):
        decoder.generate(np.array([[5, 6]]), max_length=10, **options)


def test_ragged_prompt_lists_are_refused_clearly(decoder):
    with pytest.raises(zoo.InvalidConfigError, match="rows have different lengths; right-pad them with 0"):
        decoder.generate([[5, 6], [7]], max_length=10)
