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

from backend.families import DECLARATIONS, of_pipeline_index
from backend.messages import msg
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.file_checks import check_pickle_file, read_safetensors_header

# Weights file names (without variants) that from_pretrained looks for, by library.
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# A video model view's transformer given as one file in its original names (backend/video/model_view.py).
VIEW_SINGLE_FILE = "single_file.safetensors"
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# Pipeline classes of families not supported yet (a family package declaring one makes it supported).
_UNSUPPORTED_PIPELINES = {
    "Flux": "FLUX.1", "StableDiffusion3": "Stable Diffusion 3/3.5", "PixArt": "PixArt", "AuraFlow": "AuraFlow",
    "HunyuanDiT": "Hunyuan-DiT", "Kandinsky": "Kandinsky", "StableCascade": "Stable Cascade",
    "Wuerstchen": "Wuerstchen", "LTX": "LTX-Video", "Wan": "Wan", "CogVideoX": "CogVideoX",
    "HunyuanVideo": "HunyuanVideo", "StableVideoDiffusion": "Stable Video Diffusion", "Sana": "Sana",
    "Lumina": "Lumina", "IF": "DeepFloyd IF", "Latte": "Latte", "Mochi": "Mochi",
}  # fmt: skip


def _again() -> str:
    return msg("model.fix_copy_folder_again", "copy or download the whole model folder again")


def read_json_file(path: Path) -> Any:
    """A JSON file of a model folder; a broken one is a ModelFileError with the line and column."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            path, msg("model.json_invalid", "not valid JSON (line {line}, column {column}: {error})",
                      line=exc.lineno, column=exc.colno, error=exc.msg),
            msg("model.fix_json_invalid", "the file is damaged or was edited by hand: fix it, or copy or download the "
                "whole model folder again"),
        ) from None
    except UnicodeDecodeError:
        raise ModelFileError(path, msg("model.json_not_utf8", "not UTF-8 text, so not a JSON config"), _again()) from None


def check_diffusers_folder(folder: Path) -> dict[str, Any]:
    """The folder's model_index.json, after checking every part a run of its family loads."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise _not_a_model_folder(folder)
    index = read_json_file(index_path)
    if not isinstance(index, dict):
        raise ModelFileError(
            index_path, msg("model.index_not_object", "not a model index (a JSON object naming the components)"), _again()
        )
    _check_pipeline_class(folder, index)
    family = of_pipeline_index(index)
    missing: list[str] = []
    _check_component(folder / family.denoiser_folder, "config.json", (*_DIFFUSERS_WEIGHTS, VIEW_SINGLE_FILE), missing)
    _check_component(folder / "vae", "config.json", _DIFFUSERS_WEIGHTS, missing)
    for name in family.text_encoder_folders:
        _check_component(folder / name, "config.json", _TRANSFORMERS_WEIGHTS, missing)
    for name in family.tokenizer_folders:
        _check_tokenizer(folder / name, missing)
    scheduler = folder / "scheduler" / "scheduler_config.json"
    if scheduler.is_file():
        read_json_file(scheduler)
    else:
        missing.append(_file_missing("scheduler/scheduler_config.json"))
    if missing:
        only_variants = all(getattr(m, "id", "") == "model.folder_variant_only" for m in missing)
        if only_variants:
            fix = msg("model.fix_variant", "the trainer loads the files without a variant suffix")
        else:
            fix = _again()
        problem = msg("model.folder_incomplete", "this diffusers model folder is incomplete: {missing}",
                      missing="; ".join(missing))
        raise ModelFileError(folder, problem, fix)
    return index


def _file_missing(name: str) -> str:
    return msg("model.folder_file_missing", "{name} is missing", name=name)


def _folder_missing(name: str) -> str:
    return msg("model.folder_subfolder_missing", "the {name}/ folder is missing", name=name)


def _not_a_model_folder(folder: Path) -> ModelMismatchError:
    config = folder / "config.json"
    if config.is_file():
        data = read_json_file(config)
        kind = data.get("_class_name") or (data.get("architectures") or ["?"])[0] if isinstance(data, dict) else "?"
        return ModelMismatchError(msg(
            "model.folder_is_component", "{folder} is one component ({kind}) of a diffusers model, not a whole model: "
            "give the model's folder, the one holding model_index.json (probably {parent})",
            folder=folder, kind=kind, parent=folder.parent,
        ))
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _MODEL_SUFFIXES)
    if len(files) > 5:
        return ModelMismatchError(msg(
            "model.folder_holds_many_files", "{folder} is a folder without model_index.json, so not a diffusers "
            "model; it holds {files} and {more} more: give the model file itself as --pretrained_model_name_or_path",
            folder=folder, files=", ".join(files[:5]), more=len(files) - 5,
        ))
    if files:
        return ModelMismatchError(msg(
            "model.folder_holds_files", "{folder} is a folder without model_index.json, so not a diffusers model; it "
            "holds {files}: give the model file itself as --pretrained_model_name_or_path",
            folder=folder, files=", ".join(files),
        ))
    return ModelMismatchError(msg(
        "model.folder_not_a_model", "{folder} is neither a single-file checkpoint nor a diffusers folder (no "
        "model_index.json)", folder=folder,
    ))


def _check_pipeline_class(folder: Path, index: dict[str, Any]) -> None:
    class_name = str(index.get("_class_name", ""))
    declared = [d.pipeline_class_prefix for d in DECLARATIONS if d.pipeline_class_prefix]
    for prefix, label in _UNSUPPORTED_PIPELINES.items():
        if class_name.startswith(prefix) and not any(own.startswith(prefix) for own in declared):
            raise ModelMismatchError(msg(
                "model.folder_unsupported_family", "{folder} is a {label} model ({class_name}); this trainer trains "
                "SD 1.x, SD 2.x and SDXL models and does not support {label} yet",
                folder=folder, label=label, class_name=class_name,
            ))
    family = of_pipeline_index(index)
    if family.detection is not None:
        family.detection.refuse_folder(folder, index)  # a pipeline of the family it cannot train (a refiner)
    if family.denoiser_folder not in index and "transformer" in index:
        raise ModelMismatchError(msg(
            "model.folder_transformer", "{folder} is a {class_name} model (a transformer instead of a U-Net); this "
            "trainer trains SD 1.x, SD 2.x and SDXL models only",
            folder=folder, class_name=class_name or "transformer-based",
        ))


def _check_component(path: Path, config: str, weights: tuple[str, ...], missing: list[str]) -> None:
    name = path.name
    if not path.is_dir():
        missing.append(_folder_missing(name))
        return
    if (path / config).is_file():
        read_json_file(path / config)
    else:
        missing.append(_file_missing(f"{name}/{config}"))
    present = [path / w for w in weights if (path / w).is_file()]
    shards = [path / f"{w}.index.json" for w in weights if (path / f"{w}.index.json").is_file()]
    if present:
        _check_weights(present[0])
    elif shards:
        _check_shards(shards[0], missing)
    else:
        variants = sorted(p.name for p in path.iterdir() if p.name.startswith(tuple(w.split(".")[0] + "." for w in weights)))
        if variants:
            missing.append(msg(
                "model.folder_variant_only", "{name}/ holds only {variants} (a variant such as fp16): rename it to {weights}",
                name=name, variants=", ".join(variants),
                weights=weights[0] if variants[0].endswith(".safetensors") else weights[1],
            ))
        else:
            missing.append(msg("model.folder_weights_missing", "{name}/{weights} (or {other}) is missing",
                               name=name, weights=weights[0], other=weights[1]))


def _check_weights(path: Path) -> None:
    if path.suffix == ".safetensors":
        read_safetensors_header(path)
    else:
        check_pickle_file(path)


def _check_shards(index_path: Path, missing: list[str]) -> None:
    index = read_json_file(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelFileError(index_path, msg("model.shard_index_invalid", "not a shard index (no weight_map)"), _again())
    for shard in sorted(set(weight_map.values())):
        path = index_path.parent / str(shard)
        if path.is_file():
            _check_weights(path)
        else:
            missing.append(msg("model.folder_shard_missing", "{name}/{shard} (listed in {index}) is missing",
                               name=index_path.parent.name, shard=shard, index=index_path.name))


def _check_tokenizer(path: Path, missing: list[str]) -> None:
    if not path.is_dir():
        missing.append(_folder_missing(path.name))
    elif not (path / "tokenizer.json").is_file() and not (
        (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    ):
        missing.append(msg("model.folder_tokenizer_files_missing",
                           "{name}/ has no vocab.json and merges.txt (or tokenizer.json)", name=path.name))
