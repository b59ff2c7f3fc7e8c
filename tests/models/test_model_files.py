"""Damaged model files and files that are no base model: one clear error naming the file and what to do,
from every reader (detection, loading, the LoRA-file reader), never a reader's traceback."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from backend.models.detect import detect_model
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.files import read_checkpoint
from backend.models.loading import load_components
from backend.networks.weights_io import load_weights_file
from tests.tiny_models import TinyModels


@pytest.fixture(scope="module")
def model_bytes(tiny: TinyModels) -> bytes:
    return tiny.get("sd15", single_file=True).path.read_bytes()


def _pickle_bytes(tmp_path: Path) -> bytes:
    torch.save({"state_dict": {"w": torch.zeros(64)}}, tmp_path / "p.ckpt")
    return (tmp_path / "p.ckpt").read_bytes()


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("cut.safetensors", lambda m, t: m[: len(m) // 2], r"the file ends after [\d,]+ of [\d,]+ bytes: the download or "
         r"copy was cut short; download or copy it again"),
        ("cut_header.safetensors", lambda m, t: m[:500], r"ends after 500 bytes, inside its header"),
        ("empty.safetensors", lambda m, t: b"", r"the file is empty \(0 bytes\)"),
        ("page.safetensors", lambda m, t: b"<!DOCTYPE html><html>Sign in</html>", r"a web page \(HTML\)"),
        ("lfs.safetensors", lambda m, t: b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n",
         r"Git LFS pointer.*git lfs pull"),
        ("pickle.safetensors", lambda m, t: _pickle_bytes(t), r"a PyTorch checkpoint \(pickle\).*rename it to \.ckpt"),
        ("single.ckpt", lambda m, t: m, r"a \.safetensors file, not a PyTorch checkpoint; rename it to \.safetensors"),
        ("text.ckpt", lambda m, t: b"hello, not a checkpoint", r"a text file .*not model weights"),
        ("empty.ckpt", lambda m, t: b"", r"the file is empty"),
        ("cut.ckpt", lambda m, t: _pickle_bytes(t)[:300], r"cut short or damaged: the index of its zip archive"),
        ("model.sft", lambda m, t: m, r"a \.safetensors file under another suffix; rename it to \.safetensors"),
    ],
)
def test_damaged_or_foreign_single_file(name, content, expected, model_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content(model_bytes, tmp_path))
    with pytest.raises(ModelFileError, match=expected) as caught:
        detect_model(path)
    assert str(caught.value).startswith(f"{path}: ")
    if path.suffix in (".safetensors", ".ckpt"):  # the readers that load weights check the same way
        with pytest.raises(ModelFileError, match=expected):
            read_checkpoint(path)
        with pytest.raises(ModelFileError, match=expected):
            load_weights_file(path)


def _copy(tiny: TinyModels, tmp_path: Path, arch: str = "sd15") -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny.get(arch).path, folder)
    return folder


def test_incomplete_diffusers_folder_lists_every_missing_part(tiny: TinyModels, tmp_path: Path) -> None:
    folder = _copy(tiny, tmp_path)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(folder / "vae")
    for name in ("vocab.json", "tokenizer.json"):
        (folder / "tokenizer" / name).unlink()
    with pytest.raises(ModelFileError) as caught:
        detect_model(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: this diffusers model folder is incomplete: ")
    for part in ("unet/diffusion_pytorch_model.safetensors (or diffusion_pytorch_model.bin) is missing",
                 "the vae/ folder is missing", "tokenizer/ has no vocab.json and merges.txt"):
        assert part in message
    assert message.endswith("copy or download the whole model folder again")


def test_broken_parts_of_a_diffusers_folder(tiny: TinyModels, tmp_path: Path) -> None:
    folder = _copy(tiny, tmp_path)
    config = folder / "unet" / "config.json"
    good_config = config.read_text()
    config.write_text('{\n  "in_channels": 4,,\n}')
    with pytest.raises(ModelFileError, match=rf"^{config}: not valid JSON \(line 2, column 20"):
        detect_model(folder)
    config.write_text(good_config)
    weights = folder / "text_encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=rf"^{weights}: the file ends after"):
        detect_model(folder)
    weights.unlink()
    (folder / "text_encoder" / "model.fp16.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"text_encoder/ holds only model.fp16.safetensors \(a variant such as "
                       r"fp16\): rename it to model.safetensors"):
        detect_model(folder)


def test_a_component_whose_weights_do_not_fit_its_config(tiny: TinyModels, tmp_path: Path) -> None:
    folder = _copy(tiny, tmp_path)
    config = folder / "vae" / "config.json"
    data = json.loads(config.read_text())
    data["latent_channels"] = data["latent_channels"] * 2
    config.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=rf"^{folder / 'vae'}: cannot be loaded .*config.json and weights do not "
                       "fit together"):
        load_components(folder)


def test_folders_that_are_no_model_folder(tiny: TinyModels, tmp_path: Path) -> None:
    folder = _copy(tiny, tmp_path)
    with pytest.raises(ModelMismatchError, match=rf"one component \(UNet2DConditionModel\).*\(probably {folder}\)$"):
        detect_model(folder / "unet")
    holder = tmp_path / "downloads"
    holder.mkdir()
    (holder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelMismatchError, match="without model_index.json.*holds model.safetensors: give the model "
                       "file itself"):
        detect_model(holder)
    index = folder / "model_index.json"
    index.write_text(index.read_text().replace("StableDiffusionPipeline", "StableDiffusion3Pipeline"))
    # An SD 3.5 folder's layout (its class names it): the parts SD 3.5 has are asked for.
    with pytest.raises(ModelFileError, match=r"incomplete: the transformer/ folder is missing.*text_encoder_3/"):
        detect_model(folder)


LORA_KEYS = ["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"]


@pytest.mark.parametrize(
    "keys, metadata, expected",
    [
        (LORA_KEYS, {"ss_sd_model_name": "v1-5-pruned.safetensors"},
         r"a LoRA network file, not a base model\. Give the base checkpoint it was trained on \(its metadata "
         r"says it was trained on 'v1-5-pruned\.safetensors'\).*--network_weights.*merge_lora"),
        (["lora_unet_x.hada_w1_a", "lora_unet_x.hada_w1_b"], {}, r"a LoHa \(LyCORIS\) network file.*lycoris\.kohya"),
        (["lora_te1_x.lokr_w1", "lora_te1_x.lokr_w2"], {}, r"a LoKr \(LyCORIS\) network file"),
        (["unet.down_blocks.0.attentions.0.proj_in.lora_A.weight"], {}, r"a LoRA \(diffusers/PEFT layout\) network file.*convert_lora"),
        (["emb_params"], {}, r"a textual-inversion embedding"),
        (["clip_l", "clip_g"], {}, r"a textual-inversion embedding"),
        (["encoder.conv_in.weight", "decoder.conv_out.weight"], {}, r"a VAE on its own, not a whole model"),
        (["text_model.encoder.layers.0.mlp.fc1.weight"], {}, r"a CLIP text encoder on its own"),
        (["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"], {}, r"a Stable Diffusion 3/3\.5 model"),
    ],
)
def test_recognisable_non_checkpoints_are_named(keys, metadata, expected, tmp_path: Path) -> None:
    path = tmp_path / "file.safetensors"
    save_file({key: torch.zeros(i + 1) for i, key in enumerate(keys)}, str(path), metadata=metadata)
    with pytest.raises(ModelMismatchError, match=rf"^{re.escape(str(path))}: this is {expected}"):
        detect_model(path)


def test_pickled_embedding_is_named(tmp_path: Path) -> None:
    path = tmp_path / "word.pt"
    torch.save({"string_to_param": {"*": torch.zeros(2, 768)}, "name": "word", "step": 100}, path)
    with pytest.raises(ModelMismatchError, match="textual-inversion embedding"):
        detect_model(path)
