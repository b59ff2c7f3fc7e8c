"""A tiny CLIP BPE tokenizer generated locally, for tests and the first-run demo.

Same file format and conventions as OpenAI's CLIP tokenizer: byte-level alphabet (each byte and
each byte + ``</w>``), merges learned here from a small built-in word list, and
``<|startoftext|>``/``<|endoftext|>`` as the last two ids (so ``<|endoftext|>`` has the highest id,
which the CLIP text model relies on to find the pooled token). Any text tokenizes, since unknown
words fall back to byte-level pieces.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"

_WORD_TEXT = """
a an the of and or with in on at by for to from under over near behind beside photo photograph picture
painting drawing illustration portrait landscape close up wide shot detailed highly high quality best
masterpiece lowres blurry bad anatomy cat cats dog dogs bird horse fox rabbit person man woman girl boy
child people face eyes hair hand hands smile smiling sitting standing walking running looking viewer
red green blue yellow black white orange purple pink brown gray golden silver light dark bright
colorful sky cloud clouds sun sunset sunrise night moon star stars rain snow fog water river lake sea
ocean beach mountain mountains forest tree trees flower flowers grass field garden city street road
house building castle room window door table chair book books car train boat bridge art style anime
realistic cinematic lighting soft sharp focus depth bokeh background foreground simple beautiful cute
old young small large big tiny long short tall happy sad wearing dress shirt hat glasses jacket
holding playing reading eating drinking flying swimming dancing sleeping sits stands looks outdoors
indoors day morning evening summer winter spring autumn warm cold wooden stone glass metal paper
this that is are was be has have it its one two three very much more most other
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def learn_merges(words: list[str], count: int) -> list[tuple[str, str]]:
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties broken alphabetically)."""
    table = bytes_to_unicode()
    corpus: Counter[tuple[str, ...]] = Counter()
    for word in words:
        symbols = [table[b] for b in word.lower().encode("utf-8")]
        symbols[-1] += "</w>"
        corpus[tuple(symbols)] += 1
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, freq in corpus.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, freq in corpus.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += freq
        corpus = merged
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}


def write_tiny_tokenizer(folder: str | Path, pad_with_bang: bool, merges_count: int = 300) -> CLIPTokenizer:
    """Write ``vocab.json``/``merges.txt`` plus tokenizer configs to ``folder`` and return the tokenizer.

    ``pad_with_bang`` pads with ``!`` (id 0) like the SD 2.x and SDXL TE2 tokenizers; otherwise the
    pad token is ``<|endoftext|>`` like SD 1.x's.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = learn_merges(_WORD_TEXT.split(), merges_count)
    vocab = build_vocab(merges)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(
        str(folder), pad_token="!" if pad_with_bang else EOS, model_max_length=77
    )
    tokenizer.save_pretrained(str(folder))
    return tokenizer
