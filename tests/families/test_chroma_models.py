"""Chroma model files: BFL <-> diffusers transformer names (against diffusers' own Chroma converter),
detection of BFL/ComfyUI/diffusers-named files and ChromaPipeline folders, loading both layouts to the same
model, saving and loading back, the missing-part error, and the masked joint attention (the caption and one
padding token, as sd-scripts' attn_padding=1), kept under gradient checkpointing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.families.chroma.loading import load_chroma
from backend.families.chroma.spec import ChromaSpec
from backend.families.flux.detection import from_keys as flux_from_keys
from backend.families.flux.keymap import BFL_PREFIX, bfl_to_diffusers, diffusers_to_bfl
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelMismatchError, check_model_flags, detect_model
from tests.tiny_models import TinyModels


def _load(tiny: TinyModels, single_file: bool, **replace: str) -> Components:
    model = tiny.get("chroma", single_file)
    files = {flag: str(path) for flag, path in model.part_files.items()} | replace
    return load_chroma(detect_model(model.path), files, dtype=torch.float32, device="cpu",
                       tokenizer_cache_dir=model.tokenizer_cache_dir)


def _predict(components: Components, spec: ChromaSpec, embeds: PromptEmbeds) -> torch.Tensor:
    latents = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    return spec.predict(components.unet, latents, torch.tensor([500.0, 250.0]), embeds)


def _embeds(components: Components, spec: ChromaSpec) -> PromptEmbeds:
    ids = spec.tokenize(components.tokenizers, ["a cat", "a dog on a mat"])
    with torch.no_grad():
        return spec.encode_prompts(components.text_encoders, ids)


def test_bfl_and_diffusers_names_are_exact_inverses(tiny: TinyModels) -> None:
    bfl = load_file(str(tiny.get("chroma", True).path))
    back = diffusers_to_bfl(bfl_to_diffusers(bfl))
    assert back.keys() == bfl.keys() and all(torch.equal(back[k], bfl[k]) for k in bfl)
    assert not any("mod" in key or key.startswith(("time_in", "vector_in")) for key in bfl)


def test_bfl_names_convert_as_diffusers_converts_them(tiny: TinyModels, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers.loaders.single_file_utils import convert_chroma_transformer_checkpoint_to_diffusers

    state = _load(tiny, False).unet.state_dict()
    hidden = state["x_embedder.weight"].shape[0]
    split = torch.split

    def tiny_split(tensor: torch.Tensor, sizes: object, dim: int = 0) -> tuple[torch.Tensor, ...]:
        # diffusers hard-codes the real width (3072) for a single block's linear1; scale it to the tiny one.
        if sizes == (3072, 3072, 3072, 12288):
            sizes = (hidden, hidden, hidden, tensor.shape[0] - 3 * hidden)
        return split(tensor, sizes, dim)

    monkeypatch.setattr(torch, "split", tiny_split)
    theirs = convert_chroma_transformer_checkpoint_to_diffusers(diffusers_to_bfl(state, prefix=BFL_PREFIX))
    monkeypatch.setattr(torch, "split", split)
    assert theirs.keys() == state.keys()
    assert all(torch.equal(theirs[k], state[k]) for k in state)


def test_detects_chroma_files_and_folders(tiny: TinyModels, tmp_path: Path) -> None:
    single = tiny.get("chroma", True).path
    info = detect_model(single)
    assert (info.family, info.format) == ("chroma", "safetensors") and "distilled_guidance_layer" in info.evidence
    assert detect_model(tiny.get("chroma").path).family == "chroma"
    bfl = load_file(str(single))
    save_file({BFL_PREFIX + k: v for k, v in bfl.items()}, str(tmp_path / "comfy.safetensors"))
    assert detect_model(tmp_path / "comfy.safetensors").family == "chroma"
    save_file(bfl_to_diffusers(bfl), str(tmp_path / "diffusers.safetensors"))
    assert detect_model(tmp_path / "diffusers.safetensors").family == "chroma"
    assert flux_from_keys({k: tuple(v.shape) for k, v in bfl.items()}, str(single)) is None


def test_both_layouts_load_the_same_model(tiny: TinyModels) -> None:
    single, folder = _load(tiny, True), _load(tiny, False)
    assert type(single.unet).__name__ == "ChromaTransformer2DModel" and len(single.text_encoders) == 1
    spec = ChromaSpec(16)
    torch.testing.assert_close(_predict(single, spec, _embeds(single, spec)),
                               _predict(folder, spec, _embeds(folder, spec)))


def test_save_and_load_back_both_formats(tiny: TinyModels, tmp_path: Path) -> None:
    components = _load(tiny, True)
    model = tiny.get("chroma", True)
    files = {flag: str(path) for flag, path in model.part_files.items()}
    spec = ChromaSpec()
    spec.save(components, tmp_path / "out.safetensors")
    again = spec.load(tmp_path / "out.safetensors", files=files, tokenizer_cache_dir=model.tokenizer_cache_dir)
    spec.save(components, tmp_path / "folder")
    folder = spec.load(tmp_path / "folder")
    for loaded in (again, folder):
        a, b = loaded.unet.state_dict(), components.unet.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    from diffusers import ChromaPipeline

    pipeline = ChromaPipeline.from_pretrained(tmp_path / "folder", local_files_only=True)
    assert type(pipeline.transformer).__name__ == "ChromaTransformer2DModel"


def test_a_missing_part_file_is_named(tiny: TinyModels) -> None:
    model = tiny.get("chroma", True)
    with pytest.raises(ValueError, match=r"Chroma transformer file.*give --ae as well.*no --clip_l"):
        load_chroma(detect_model(model.path), {"t5xxl": str(model.part_files["t5xxl"])}, dtype=torch.float32,
                    device="cpu", tokenizer_cache_dir=model.tokenizer_cache_dir)


def test_the_transformer_attends_to_the_caption_and_one_padding_token(tiny: TinyModels) -> None:
    components, spec = _load(tiny, True), ChromaSpec(16)
    embeds = _embeds(components, spec)
    length = int(embeds.attention_mask[0].sum())  # "a cat": its tokens and </s>
    base = _predict(components, spec, embeds)

    def changed(position: int) -> bool:
        hidden = embeds.hidden_states.clone()
        hidden[0, position] += 5.0
        out = _predict(components, spec, PromptEmbeds(hidden, None, embeds.attention_mask))
        return not torch.allclose(out[0], base[0])

    assert changed(length - 1) and changed(length), "the caption and the first padding token are attended to"
    assert not changed(length + 1) and not changed(15), "later padding is masked out"

    components.unet.enable_gradient_checkpointing()
    components.unet.train()
    with torch.enable_grad():
        checkpointed = _predict(components, spec, embeds)
    torch.testing.assert_close(checkpointed, base)  # the single blocks keep the mask under checkpointing


def test_model_type_must_match_the_file(tiny: TinyModels) -> None:
    chroma, schnell = detect_model(tiny.get("chroma", True).path), detect_model(tiny.get("flux-schnell", True).path)
    for info in (chroma, schnell):
        assert check_model_flags(info, command="flux_train_network", v2=False, v_parameterization=False,
                                 options={"model_type": "chroma" if info.family == "chroma" else "flux"}) == []
    with pytest.raises(ModelMismatchError, match=r"Chroma model .*--model_type is flux .*use --model_type chroma"):
        check_model_flags(chroma, command="flux_train", v2=False, v_parameterization=False,
                          options={"model_type": "flux"})
    with pytest.raises(ModelMismatchError, match=r"FLUX.1 \[schnell\] model .*use --model_type flux"):
        check_model_flags(schnell, command="flux_train", v2=False, v_parameterization=False,
                          options={"model_type": "chroma"})
