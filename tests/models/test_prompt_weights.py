"""--weighted_captions: A1111-style weights parsed as sd-scripts parses them, and put on the text encoders'
outputs of SD and SDXL (each encoder of SDXL, not its pooled output)."""

from __future__ import annotations

import pytest
import torch

from backend.families.loaded import get_spec
from backend.models.loading import load_components
from backend.models.prompt_weights import parse_prompt_attention
from tests.tiny_models import TinyModels


def test_parse_prompt_attention_as_sd_scripts_doctests() -> None:
    assert parse_prompt_attention("normal text") == [("normal text", 1.0)]
    assert parse_prompt_attention("an (important) word") == [("an ", 1.0), ("important", 1.1), (" word", 1.0)]
    assert parse_prompt_attention("(unbalanced") == [("unbalanced", 1.1)]
    assert parse_prompt_attention(r"\(literal\]") == [("(literal]", 1.0)]
    assert parse_prompt_attention("(unnecessary)(parens)") == [("unnecessaryparens", 1.1)]
    parsed = parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    assert [text for text, _ in parsed] == ["a ", "house", " ", "on", " a ", "hill", ", sun, ", "sky", "."]
    assert [round(w, 4) for _, w in parsed] == [1.0, 1.573, 1.1, 1.0, 1.1, 0.55, 1.1, 1.4641, 1.1]
    assert parse_prompt_attention("") == [("", 1.0)]


@pytest.mark.parametrize("arch, max_len", [("sd15", None), ("sd2", 150), ("sdxl", None)])
def test_weights_multiply_their_tokens_outputs(arch: str, max_len: int | None, tiny: TinyModels) -> None:
    components = load_components(tiny.get(arch).path)
    spec = get_spec(components.family)
    plain = ["a photo of a cat, " * 12, ""]  # a long caption (cut at 75 or 150 tokens) and an empty one
    ids, weights = spec.tokenize_weighted(components.tokenizers, plain, max_len)
    assert all(torch.equal(a, b) for a, b in zip(ids, spec.tokenize(components.tokenizers, plain, max_len), strict=True))
    assert all(bool((w == 1).all()) for w in weights)
    with torch.no_grad():
        same = spec.encode_captions(components, plain, max_len, None, weighted=True)
        assert torch.equal(same.hidden_states, spec.encode_captions(components, plain, max_len, None).hidden_states)
        weighted = spec.encode_captions(components, ["a (cat:2.0) [dog]"], max_len, None, weighted=True)
        base = spec.encode_captions(components, ["a cat dog"], max_len, None)
    ids, weights = spec.tokenize_weighted(components.tokenizers, ["a (cat:2.0) [dog]"], max_len)
    assert torch.equal(ids[0], spec.tokenize(components.tokenizers, ["a cat dog"], max_len)[0])
    # Per position: "a" x1, "cat" x2, "dog" /1.1 (each one token in the tiny vocabulary, as in CLIP's), the rest x1.
    row = torch.ones(base.hidden_states.shape[1])
    row[2], row[3] = 2.0, 1 / 1.1
    assert torch.allclose(weighted.hidden_states, base.hidden_states * row[None, :, None], atol=1e-6)
    if arch == "sdxl":
        assert torch.equal(weighted.pooled, base.pooled)  # sd-scripts leaves the pooled output unweighted

