"""Data: the reserved token ids, tokenizers, the user's data files shaped for a
model, the pretrained presets' bundled data sets, and batching."""
