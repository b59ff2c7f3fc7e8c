"""Is this folder a complete diffusers model? Checked before any component is loaded.

diffusers and transformers report a missing or broken part one at a time, as "Error no file named
diffusion_pytorch_model.bin found in directory ..." or a JSON traceback. Here every part a training
run needs is looked at first (config JSON, weights, tokenizer files) and all that is wrong is said at
once, with the file names; weights files get the same header checks as single files. A folder that
is not a model folder at all (one component of one, a folder holding checkpoint files, a pipeline of
a family not supported yet) is said to be that. Light: standard library only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.file_checks import check_pickle_file, read_safetensors_header
from backend.models.file_kinds import SUPPORTED

AGAIN = "copy or download the whole model folder again"
# Weights file names (without variants) that from_pretrained looks for, by library.
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_UNSUPPORTED_PIPELINES = {
    "Flux": "FLUX.1", "StableDiffusion3": "Stable Diffusion 3/3.5", "PixArt": "PixArt", "AuraFlow": "AuraFlow",
    "HunyuanDiT": "Hunyuan-DiT", "Kandinsky": "Kandinsky", "StableCascade": "Stable Cascade",
    "Wuerstchen": "Wuerstchen", "LTX": "LTX-Video", "Wan": "Wan", "CogVideoX": "CogVideoX",
    "HunyuanVideo": "HunyuanVideo", "StableVideoDiffusion": "Stable Video Diffusion", "Sana": "Sana",
    "Lumina": "Lumina", "IF": "DeepFloyd IF", "Latte": "Latte", "Mochi": "Mochi",
}  # fmt: skip


def read_json_file(path: Path) -> Any:
    """A JSON file of a model folder; a broken one is a ModelFileError with the line and column."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            f"the file is damaged or was edited by hand: fix it, or {AGAIN}",
        ) from None
    except UnicodeDecodeError:
        raise ModelFileError(path, "not UTF-8 text, so not a JSON config", AGAIN) from None


def check_diffusers_folder(folder: Path) -> dict[str, Any]:
    """The folder's model_index.json, after checking every part an SD 1.x/2.x/SDXL run loads."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise _not_a_model_folder(folder)
    index = read_json_file(index_path)
    if not isinstance(index, dict):
        raise ModelFileError(index_path, "not a model index (a JSON object naming the components)", AGAIN)
    _check_pipeline_class(folder, index)
    sdxl = "text_encoder_2" in index or "XL" in str(index.get("_class_name", ""))
    missing: list[str] = []
    for name in ("unet", "vae"):
        _check_component(folder / name, "config.json", _DIFFUSERS_WEIGHTS, missing)
    for name in ("text_encoder", "text_encoder_2") if sdxl else ("text_encoder",):
        _check_component(folder / name, "config.json", _TRANSFORMERS_WEIGHTS, missing)
    for name in ("tokenizer", "tokenizer_2") if sdxl else ("tokenizer",):
        _check_tokenizer(folder / name, missing)
    scheduler = folder / "scheduler" / "scheduler_config.json"
    if scheduler.is_file():
        read_json_file(scheduler)
    else:
        missing.append("scheduler/scheduler_config.json is missing")
    if missing:
        only_variants = all("(a variant such as fp16)" in m for m in missing)
        fix = "the trainer loads the files without a variant suffix" if only_variants else AGAIN
        raise ModelFileError(folder, "this diffusers model folder is incomplete: " + "; ".join(missing), fix)
    return index


def _not_a_model_folder(folder: Path) -> ModelMismatchError:
    config = folder / "config.json"
    if config.is_file():
        data = read_json_file(config)
        kind = data.get("_class_name") or (data.get("architectures") or ["?"])[0] if isinstance(data, dict) else "?"
        return ModelMismatchError(
            f"{folder} is one component ({kind}) of a diffusers model, not a whole model: give the model's folder, "
            f"the one holding model_index.json (probably {folder.parent})"
        )
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _MODEL_SUFFIXES)
    if files:
        listed = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        return ModelMismatchError(
            f"{folder} is a folder without model_index.json, so not a diffusers model; it holds {listed}: give "
            "the model file itself as --pretrained_model_name_or_path"
        )
    return ModelMismatchError(
        f"{folder} is neither a single-file checkpoint nor a diffusers folder (no model_index.json)"
    )


def _check_pipeline_class(folder: Path, index: dict[str, Any]) -> None:
    class_name = str(index.get("_class_name", ""))
    for prefix, label in _UNSUPPORTED_PIPELINES.items():
        if class_name.startswith(prefix):
            raise ModelMismatchError(
                f"{folder} is a {label} model ({class_name}); this trainer trains {SUPPORTED} models and does not "
                f"support {label} yet"
            )
    if "XL" in class_name and not (index.get("text_encoder") or [None])[-1]:
        raise ModelMismatchError(f"{folder} looks like an SDXL refiner (no first text encoder); it is not supported")
    if "unet" not in index and "transformer" in index:
        raise ModelMismatchError(
            f"{folder} is a {class_name or 'transformer-based'} model (a transformer instead of a U-Net); this "
            f"trainer trains {SUPPORTED} models only"
        )


def _check_component(path: Path, config: str, weights: tuple[str, ...], missing: list[str]) -> None:
    name = path.name
    if not path.is_dir():
        missing.append(f"the {name}/ folder is missing")
        return
    if (path / config).is_file():
        read_json_file(path / config)
    else:
        missing.append(f"{name}/{config} is missing")
    present = [path / w for w in weights if (path / w).is_file()]
    shards = [path / f"{w}.index.json" for w in weights if (path / f"{w}.index.json").is_file()]
    if present:
        _check_weights(present[0])
    elif shards:
        _check_shards(shards[0], missing)
    else:
        variants = sorted(p.name for p in path.iterdir() if p.name.startswith(tuple(w.split(".")[0] + "." for w in weights)))
        if variants:
            missing.append(
                f"{name}/ holds only {', '.join(variants)} (a variant such as fp16): rename it to "
                f"{weights[0] if variants[0].endswith('.safetensors') else weights[1]}"
            )
        else:
            missing.append(f"{name}/{weights[0]} (or {weights[1]}) is missing")


def _check_weights(path: Path) -> None:
    if path.suffix == ".safetensors":
        read_safetensors_header(path)
    else:
        check_pickle_file(path)


def _check_shards(index_path: Path, missing: list[str]) -> None:
    index = read_json_file(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelFileError(index_path, "not a shard index (no weight_map)", AGAIN)
    for shard in sorted(set(weight_map.values())):
        path = index_path.parent / str(shard)
        if path.is_file():
            _check_weights(path)
        else:
            missing.append(f"{index_path.parent.name}/{shard} (listed in {index_path.name}) is missing")


def _check_tokenizer(path: Path, missing: list[str]) -> None:
    if not path.is_dir():
        missing.append(f"the {path.name}/ folder is missing")
    elif not (path / "tokenizer.json").is_file() and not (
        (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    ):
        missing.append(f"{path.name}/ has no vocab.json and merges.txt (or tokenizer.json)")
