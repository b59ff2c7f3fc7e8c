"""SD 3.5's --clip_l_dropout_rate / --clip_g_dropout_rate / --t5_dropout_rate: per sample and per encoder, a
dropped encoder's part of the joint conditioning (its columns of the CLIP tokens, its part of the pooled vector,
or T5's tokens) becomes zeros, as sd-scripts' Sd3TextEncodingStrategy makes it; cached embeddings stay whole."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from backend.families.sd3.spec import Sd3Spec, Sd3TextOptions
from backend.families.sd3.text_dropout import TextDropout
from backend.models.components import PromptEmbeds
from backend.options import parse_args
from backend.options.errors import OptionError

L, G, T5 = 32, 24, 64  # CLIP-L and CLIP-G widths (hidden = projection here), T5's (the joint width)


def _embeds(batch: int) -> PromptEmbeds:
    return PromptEmbeds(torch.rand(batch, 77 + 8, T5) + 1, torch.rand(batch, L + G) + 1)


def _dropout(l_rate: float = 0.0, g_rate: float = 0.0, t5_rate: float = 0.0) -> TextDropout:
    return TextDropout(l_rate, g_rate, t5_rate, hidden_widths=(L, G), pooled_widths=(L, G))


def _parts(embeds: PromptEmbeds) -> dict[str, torch.Tensor]:
    hidden, pooled = embeds.hidden_states, embeds.pooled
    return {"l": hidden[:, :77, :L], "g": hidden[:, :77, L:L + G], "pad": hidden[:, :77, L + G:],
            "t5": hidden[:, 77:], "l_pooled": pooled[:, :L], "g_pooled": pooled[:, L:]}


@pytest.mark.parametrize(("rates", "dropped"), [
    ((1.0, 0.0, 0.0), {"l", "l_pooled"}),
    ((0.0, 1.0, 0.0), {"g", "g_pooled"}),
    ((0.0, 0.0, 1.0), {"t5"}),
])
def test_a_dropped_encoder_becomes_zeros_and_the_others_stay(rates, dropped) -> None:
    embeds = _embeds(3)
    before = {k: v.clone() for k, v in _parts(embeds).items()}
    out = _dropout(*rates).apply(embeds, torch.Generator().manual_seed(0))
    for name, part in _parts(out).items():
        if name in dropped:
            assert not part.any(), name
        else:
            assert torch.equal(part, before[name]), name
    assert all(torch.equal(v, before[k]) for k, v in _parts(embeds).items()), "the cached embeddings are not changed"


def test_each_sample_draws_from_its_own_generator_whatever_its_batch() -> None:
    dropout = _dropout(0.5, 0.5, 0.5)

    def generators(*seeds: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(s) for s in seeds]

    together = dropout.keep_masks(8, torch.device("cpu"), generators(*range(8)))
    alone = torch.cat([dropout.keep_masks(1, torch.device("cpu"), generators(s)) for s in range(8)])
    assert torch.equal(together, alone)
    many = dropout.keep_masks(4000, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert torch.allclose(many.mean(0), torch.full((3,), 0.5), atol=0.04), "each encoder dropped on its own at 0.5"


def test_the_spec_drops_only_with_a_rate_and_reads_the_widths_from_the_configs() -> None:
    components = SimpleNamespace(configs=SimpleNamespace(text_encoders=[
        {"hidden_size": L, "projection_dim": L}, {"hidden_size": G, "projection_dim": G}, {"d_model": T5}]))
    embeds = _embeds(2)
    plain = Sd3Spec().configured(Sd3TextOptions(16, False, False), components)
    assert plain.dropout is None and plain.step_conditioning(embeds, None) is embeds
    spec = Sd3Spec().configured(Sd3TextOptions(16, False, False, 0.0, 1.0, 0.0), components)
    assert spec.dropout == _dropout(0.0, 1.0, 0.0)
    out = _parts(spec.step_conditioning(embeds, None))
    assert not out["g"].any() and not out["g_pooled"].any() and out["l"].all() and out["t5"].all()


def test_the_rates_are_sd3_options_between_0_and_1() -> None:
    base = ["--pretrained_model_name_or_path", "/m.safetensors", "--train_data_dir", "/d", "--output_dir", "/o"]
    args = parse_args("sd3_train", [*base, "--clip_l_dropout_rate", "0.1", "--t5_dropout_rate", "0.25"])
    assert Sd3TextOptions.from_args(args).clip_l_dropout_rate == 0.1
    assert (args.clip_g_dropout_rate, args.t5_dropout_rate) == (0.0, 0.25)
    with pytest.raises(OptionError, match="clip_g_dropout_rate.*between 0 and 1"):
        parse_args("sd3_train_network", [*base, "--clip_g_dropout_rate", "1.5"])
    with pytest.raises(OptionError, match="only sd3_train_network, sd3_train accept it"):
        parse_args("flux_train_network", [*base, "--t5_dropout_rate", "0.5"])
