"""A tiny T5 tokenizer generated locally (the T5 v1.1 tokenizer's conventions, a small vocabulary).

The real one (`google/t5-v1_1-xxl`, FLUX.1's second tokenizer) is a SentencePiece Unigram model:
`<pad>` 0, `</s>` 1, `<unk>` 2, words split on whitespace with "▁" marking a word's start, and `</s>`
appended to every sequence. Here a Unigram model is trained with the `tokenizers` library on the
tiny CLIP tokenizer's word list and wrapped as transformers' T5 tokenizer, so
`T5TokenizerFast.from_pretrained(folder)` loads it and any text tokenizes (unknown characters -> `<unk>`).
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import T5TokenizerFast

from devtools.tiny_tokenizer import _WORD_TEXT

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
MAX_LENGTH = 512  # sd-scripts' t5xxl_max_token_length for dev (schnell uses 256)


def _train_vocab(vocab_size: int) -> list[tuple[str, float]]:
    """Pieces and log-probabilities of a Unigram model learnt from the word list (deterministic)."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], unk_token=UNK,
                                      show_progress=False)
    words = _WORD_TEXT.split()
    # Each word a few times, and short phrases, so pieces for whole common words are learnt.
    tokenizer.train_from_iterator([" ".join(words[i:i + 6]) for i in range(len(words))] * 3, trainer)
    return [(piece, float(score)) for piece, score in json.loads(tokenizer.to_str())["model"]["vocab"]]


def write_tiny_t5_tokenizer(folder: str | Path, vocab_size: int = 400) -> T5TokenizerFast:
    """Write a tokenizer folder (`tokenizer.json` and its config) to `folder` and return the tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = _train_vocab(vocab_size)
    assert [piece for piece, _ in vocab[:3]] == [PAD, EOS, UNK]  # the ids T5 models are configured with
    tokenizer = T5TokenizerFast(vocab=vocab, eos_token=EOS, unk_token=UNK, pad_token=PAD, extra_ids=0,
                                model_max_length=MAX_LENGTH)
    tokenizer.save_pretrained(str(folder))
    return T5TokenizerFast.from_pretrained(str(folder))
