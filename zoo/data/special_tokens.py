"""The token ids every zoo tokenizer reserves, at the start of its vocabulary.

This module imports nothing, so that code needing only an id (scoring, data
files, the native references in tools/) never starts Keras.

Example:
>>> RESERVED_TOKENS[PAD_ID], RESERVED_TOKENS[END_ID]
('[PAD]', '[END]')
"""

PAD_ID = 0  # padding in every token-based family: masked in attention, skipped in scores
START_ID = 1
END_ID = 2
UNKNOWN_ID = 3
RESERVED_TOKENS = ("[PAD]", "[START]", "[END]", "[UNK]")  # at ids 0, 1, 2, 3
