"""Diffusers folders we write load in transformers 4 and 5 alike (issue 14, item 16).

transformers 5 dropped the `text_model.` level from `CLIPTextModel` (its `save_pretrained` writes
`embeddings...`, `encoder...`); transformers 4 (sd-scripts pins 4.54) expects `text_model.embeddings...`
and, given the flat keys, builds a randomly initialised text encoder with only a log warning.
transformers 5 reads both: `conversion_mapping.py` maps `CLIPTextModel` with
`PrefixChange(prefix_to_remove="text_model")`. So we write the 4.x layout, and read either.
(Checked once by hand with transformers 4.54.0 in a throwaway venv: the folders written now load with
no missing or unexpected key and the file's exact weights; those written before loaded 52 random tensors.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from backend.families import declaration
from backend.models.loading import load_components
from backend.models.saving import save_components
from tests.tiny_models import TinyModels

TE_CLASSES = (CLIPTextModel, CLIPTextModelWithProjection)


def saved_state(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    path = files[0]
    return load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)


@pytest.mark.parametrize(("arch", "safetensors"), [("sd15", False), ("sdxl", True)])
def test_folder_text_encoders_use_the_transformers_4_layout(arch: str, safetensors: bool, tiny: TinyModels,
                                                            tmp_path: Path) -> None:
    components = load_components(tiny.get(arch).path)
    folder = save_components(components, tmp_path / "model", safetensors=safetensors)
    for name, te, cls in zip(declaration(components.family).text_encoder_folders, components.text_encoders, TE_CLASSES,
                             strict=False):
        state = saved_state(folder / name)
        assert all(key.startswith(("text_model.", "text_projection.")) for key in state), sorted(state)[:3]
        assert "text_model.encoder.layers.0.self_attn.q_proj.weight" in state
        # transformers 5 reads that layout into exactly the weights saved.
        loaded, info = cls.from_pretrained(folder / name, local_files_only=True, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"]
        expected = te.state_dict()
        assert loaded.state_dict().keys() == expected.keys()
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


def test_our_loader_reads_folders_in_either_layout(tiny: TinyModels, tmp_path: Path) -> None:
    """A folder from transformers 5's own save_pretrained (flat keys) and one of ours load the same."""
    ours = save_components(load_components(tiny.get("sdxl").path), tmp_path / "ours")
    flat = save_components(load_components(ours), tmp_path / "flat")
    path = flat / "text_encoder" / "model.safetensors"
    state = load_file(path)
    save_file({k.removeprefix("text_model."): v for k, v in state.items()}, str(path), metadata={"format": "pt"})
    a, b = load_components(ours), load_components(flat)
    for left, right in zip(a.text_encoders, b.text_encoders, strict=True):
        sa, sb = left.state_dict(), right.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_folder_tokenizers_carry_the_files_transformers_4_reads(tiny: TinyModels, tmp_path: Path) -> None:
    """transformers 5 saves only tokenizer.json; transformers 4's CLIPTokenizer (model_index.json's class)
    reads vocab.json and merges.txt. (By hand, 4.54.0 then encodes exactly as 5 does.)"""
    components = load_components(tiny.get("sdxl").path)
    folder = save_components(components, tmp_path / "model")
    for name, tokenizer in zip(("tokenizer", "tokenizer_2"), components.tokenizers, strict=True):
        assert json.loads((folder / name / "vocab.json").read_text(encoding="utf-8")) == tokenizer.get_vocab()
        merges = (folder / name / "merges.txt").read_text(encoding="utf-8").splitlines()
        assert merges[0].startswith("#version") and len(merges) > 1
