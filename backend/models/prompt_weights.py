"""A1111-style caption weights (`--weighted_captions`), read and applied as sd-scripts does.

`(word)` multiplies the weight of what it holds by 1.1, `[word]` divides it by 1.1, `(word:1.3)` multiplies
it by 1.3; brackets nest, an unclosed one runs to the end, and `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are the
characters themselves (sd-scripts' `TokenizeStrategy._get_weighted_input_ids`). Each piece of text is
tokenized on its own, so every token knows its weight; the ids are laid out in 77-token chunks exactly as
`tokenizers.tokenize_chunks` lays out unweighted ones. The text encoder's output at each token is then
multiplied by the token's weight (sd-scripts' `encode_tokens_with_weights`, without rescaling the mean as
its older `get_weighted_text_embeddings` did); start, end and padding positions keep weight 1.
"""

from __future__ import annotations

import re

import torch
from transformers import CLIPTokenizer

from backend.models.tokenizers import ALLOWED_MAX_TOKEN_LENGTHS, MODEL_MAX_LENGTH, chunk_ids

_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:([+-]?[.\d]+)\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
ROUND_MULTIPLIER = 1.1  # "(text)"
SQUARE_MULTIPLIER = 1 / 1.1  # "[text]"


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """'a (red:1.5) [dog]' -> [('a ', 1.0), ('red', 1.5), (' ', 1.0), ('dog', 0.909...)]: the text in pieces
    with their weights; neighbouring pieces of one weight are merged, and empty text is [('', 1.0)]."""
    pieces: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            pieces.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            multiply_from(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            pieces.append([token, 1.0])
    for start in round_open:  # unclosed brackets weigh up to the end
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply_from(start, SQUARE_MULTIPLIER)
    if not pieces:
        return [("", 1.0)]
    merged: list[list] = [pieces[0]]
    for text_piece, weight in pieces[1:]:
        if merged[-1][1] == weight:
            merged[-1][0] += text_piece
        else:
            merged.append([text_piece, weight])
    return [(piece, weight) for piece, weight in merged]


def _weighted_ids(tokenizer: CLIPTokenizer, prompt: str, length: int) -> tuple[list[int], list[float]]:
    """One prompt's ids and weights, `length` long: start, at most length - 2 tokens, end, padding."""
    pieces = parse_prompt_attention(prompt)
    ids: list[int] = []
    weights: list[float] = []
    for piece_ids, (_, weight) in zip(
        # Cut at the length each piece could at most fill (the whole is cut below; this keeps the tokenizer from
        # warning about sequences longer than the model's).
        tokenizer([piece for piece, _ in pieces], add_special_tokens=False, truncation=True,
                  max_length=length - 2).input_ids,
        pieces, strict=True,
    ):
        ids += piece_ids
        weights += [weight] * len(piece_ids)
    ids, weights = ids[: length - 2], weights[: length - 2]
    padding = length - 2 - len(ids)
    return ([tokenizer.bos_token_id, *ids, tokenizer.eos_token_id] + [tokenizer.pad_token_id] * padding,
            [1.0, *weights, 1.0] + [1.0] * padding)


def tokenize_weighted(
    tokenizer: CLIPTokenizer, prompts: list[str], max_token_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and their weights, both ``[batch, chunks, 77]`` (ids as `tokenize_chunks` gives them)."""
    max_token_length = max_token_length or 75
    if max_token_length not in ALLOWED_MAX_TOKEN_LENGTHS:
        raise ValueError(f"max_token_length must be one of {ALLOWED_MAX_TOKEN_LENGTHS}, got {max_token_length}")
    rows = [_weighted_ids(tokenizer, prompt, max_token_length + 2) for prompt in prompts]
    ids = torch.tensor([row[0] for row in rows], dtype=torch.long)
    weights = torch.tensor([row[1] for row in rows], dtype=torch.float32)
    window = MODEL_MAX_LENGTH - 2
    ones = torch.ones(len(prompts), 1)
    weight_chunks = [torch.cat([ones, weights[:, start : start + window], ones], dim=1)
                     for start in range(1, max_token_length + 1, window)]
    return chunk_ids(tokenizer, ids, max_token_length), torch.stack(weight_chunks, dim=1)


def apply_token_weights(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``[B, 2 + 75 * C, D]`` conditioning (`spec.join_chunks`) times each token's weight (``[B, C, 77]``): every
    chunk's 75 text positions; the first (start) and last (end or padding) positions keep theirs."""
    middle = weights[:, :, 1:-1].reshape(weights.shape[0], -1, 1).to(hidden.device, hidden.dtype)
    return torch.cat([hidden[:, :1], hidden[:, 1:-1] * middle, hidden[:, -1:]], dim=1)
