"""A tiny Llama 3 tokenizer generated locally (llava-llama-3-8b's conventions, a small vocabulary).

The real one (HunyuanVideo's `tokenizer/`, Llama 3's) is a byte-level BPE over GPT-4-style pre-tokenized text
with the special tokens `<|begin_of_text|>` (prepended to every sequence), `<|end_of_text|>`,
`<|start_header_id|>`, `<|end_header_id|>` and `<|eot_id|>` (HunyuanVideo's prompt template uses them), and a
`<pad>` token for `padding="max_length"`. Here a byte-level BPE is trained with the `tokenizers` library on the
tiny CLIP word list and HunyuanVideo's prompt template, so the template tokenizes into whole words and any text
tokenizes (every byte is in the alphabet). Loaded with `AutoTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from devtools.tiny_tokenizer import _WORD_TEXT

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<pad>"
HEADER_START, HEADER_END, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIALS = [BOS, EOS, HEADER_START, HEADER_END, EOT, PAD]
MAX_LENGTH = 8192  # Llama 3's context


def _training_text() -> list[str]:
    from backend.families.hunyuan_video.prompt import PROMPT_TEMPLATE

    words = _WORD_TEXT.split()
    template = PROMPT_TEMPLATE.replace("{}", "")
    return [" ".join(words[i:i + 6]) for i in range(len(words))] * 3 + [template] * 3


def write_tiny_llama_tokenizer(folder: str | Path, vocab_size: int = 1200) -> PreTrainedTokenizerFast:
    """Write a tokenizer folder (`tokenizer.json` and its config) to `folder` and return the tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_training_text(), trainer)
    bos = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(  # Llama 3: BOS before each sequence
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                      model_max_length=MAX_LENGTH, padding_side="right")
    wrapped.save_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))
