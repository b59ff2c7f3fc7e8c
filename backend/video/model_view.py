"""finetrainers' `--transformer_id`, `--vae_id`, `--text_encoder[_2|_3]_id`, `--tokenizer[_2|_3]_id`: components
taken from other folders than `--pretrained_model_name_or_path`.

finetrainers loads such a component with `from_pretrained(<id>)` (the folder is the component itself, e.g. a
fine-tuned `transformer/`). Here the families load one diffusers folder, so the run loads a *view* of it: a
folder under the system's temp folder whose `model_index.json` is the base model's and whose component folders
are links to the base model's, except the overridden ones, which link to the given folders. Nothing is copied
(directory symlinks, else per-file hard links: Windows without Developer Mode); where neither works the run
is refused with the reason before anything loads. The view's name is a hash of what it links to, so every
process of a run (and a later run with the same folders) uses the same view; it is built under a temporary
name and renamed, so a half-built view is never used.

A single transformer file (`--transformer_id wan2.1_t2v_1.3B_bf16.safetensors`, in its original names as ComfyUI
keeps it; families declaring `single_file_transformer`) is linked into the view's `transformer/` as
`single_file.safetensors` beside the base model's `config.json`; `load_transformer` reads it with diffusers'
`from_single_file` (which renames its keys), after the family's own `prepare` where diffusers' converter needs help.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.messages import msg
from backend.models.folder_checks import VIEW_SINGLE_FILE

if TYPE_CHECKING:
    import torch

    from backend.families.declaration import FamilyDeclaration

# flag -> the component folder of a diffusers pipeline it replaces
COMPONENT_FLAGS = {
    "transformer_id": "transformer", "vae_id": "vae",
    "text_encoder_id": "text_encoder", "text_encoder_2_id": "text_encoder_2", "text_encoder_3_id": "text_encoder_3",
    "tokenizer_id": "tokenizer", "tokenizer_2_id": "tokenizer_2", "tokenizer_3_id": "tokenizer_3",
}  # fmt: skip
VIEWS = "kohya_video_model_views"
SINGLE_FILE_SUFFIXES = (".safetensors", ".sft")


class ComponentError(ValueError):
    """A component flag names something that cannot stand in for that component."""


def overrides(args: argparse.Namespace) -> dict[str, Path]:
    """component folder name -> the folder given for it (flags left empty are not listed)."""
    return {component: Path(str(getattr(args, flag))).expanduser()
            for flag, component in COMPONENT_FLAGS.items() if getattr(args, flag, None)}


def component_folder(flag: str, given: Path, component: str) -> Path:
    """The folder holding the component: `given` itself (finetrainers' meaning), or its `<component>/` when a
    whole pipeline folder was given."""
    if not given.exists():
        raise ComponentError(msg(
            "video.component.missing", "--{flag} {path} does not exist; a Hugging Face id is not downloaded here: "
            "download it (huggingface-cli download <id> --local-dir <folder>) and give the folder",
            flag=flag, path=given))
    for candidate in (given, given / component):
        if (candidate / "config.json").is_file() or (component.startswith("tokenizer") and candidate.is_dir()
                                                     and any(candidate.glob("tokenizer*"))):
            return candidate
    raise ComponentError(msg(
        "video.component.not_a_component", "--{flag} {path}: not a diffusers {component} folder (no config.json "
        "there or in {path}/{component}); give the folder that holds the {component}'s config.json and weights",
        flag=flag, path=given, component=component,
    ))


def model_view(base: Path, args: argparse.Namespace) -> Path:
    """The folder to load: `base` itself without component flags, else the view (see the module docstring)."""
    given = overrides(args)
    if not given:
        return base
    flags = {component: flag for flag, component in COMPONENT_FLAGS.items()}
    index_file = base / "model_index.json"
    if not index_file.is_file():
        raise ComponentError(msg(
            "video.component.no_index", "--{flag} needs --pretrained_model_name_or_path to be a diffusers folder "
            "(with model_index.json) for the other components; {path} is not one",
            flag=flags[next(iter(given))], path=base))
    index = json.loads(index_file.read_text(encoding="utf-8"))
    links: dict[str, Path] = {}
    single: dict[str, Path] = {}  # component -> a single weights file standing in for it
    for component, folder in given.items():
        if component not in index:
            raise ComponentError(msg(
                "video.component.unknown", "--{flag}: this model has no {component} (its components: {known})",
                flag=flags[component], component=component,
                known=", ".join(k for k in index if not k.startswith("_"))))
        if component == "transformer" and folder.is_file():
            single[component] = _single_file(folder, base, getattr(args, "model_name", None))
            continue
        links[component] = component_folder(flags[component], folder, component).resolve()
    for entry in sorted(base.iterdir()):
        if entry.is_dir() and entry.name not in links and entry.name not in single:
            links[entry.name] = entry.resolve()
    named = {k: str(v) for k, v in sorted({**links, **{f"{k}:file": v for k, v in single.items()}}.items())}
    key = hashlib.sha256(json.dumps(named).encode()).hexdigest()[:16]
    view = Path(tempfile.gettempdir()) / VIEWS / key
    if (view / "model_index.json").is_file():
        return view
    building = view.with_name(f"{key}.{uuid.uuid4().hex[:8]}.part")
    building.mkdir(parents=True)
    try:
        shutil.copyfile(index_file, building / "model_index.json")
        for name, target in links.items():
            _link(target, building / name)
        for name, file in single.items():
            (building / name).mkdir()
            _link_file((base / name / "config.json").resolve(), building / name / "config.json")
            _link_file(file, building / name / VIEW_SINGLE_FILE)
        try:
            os.replace(building, view)
        except OSError:  # another process made the same view first: use it
            if not (view / "model_index.json").is_file():
                raise
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return view


def _single_file(file: Path, base: Path, model_name: str | None) -> Path:
    from backend import families
    from backend.video.translate import video_family

    if file.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise ComponentError(msg(
            "video.component.single_file_format", "--transformer_id {path}: a single transformer file is read as "
            "safetensors ({suffixes}) only; convert it to safetensors or give a diffusers transformer folder",
            path=file, suffixes=", ".join(SINGLE_FILE_SUFFIXES)))
    family = video_family(model_name or "")
    if family is None or not family.single_file_transformer:  # (those that do: tested with a file in original names)
        readers = [d.label for d in families.DECLARATIONS if d.single_file_transformer]
        raise ComponentError(msg(
            "video.component.single_file_family", "--transformer_id {path}: a single transformer file is read for "
            "{readers} so far; for {model} give a diffusers transformer folder (config.json and weights)",
            path=file, readers=", ".join(readers), model=model_name))
    owner = _family_of_file(file)
    if owner is not None and owner.name != family.name:
        raise ComponentError(msg(
            "video.component.single_file_other_family", "--transformer_id {path} is a {other} transformer file; "
            "--model_name {model} trains {label}: give a {label} transformer, or train with the model it belongs to",
            path=file, other=owner.label, model=model_name, label=family.label))
    if not (base / "transformer" / "config.json").is_file():
        raise ComponentError(msg(
            "video.component.single_file_config", "--transformer_id {path}: a single file carries no architecture; "
            "it is read with the config.json of {base}/transformer, which is missing", path=file, base=base))
    return file.resolve()


def _family_of_file(file: Path) -> FamilyDeclaration | None:
    """The family whose original-layout keys the file holds (by each family's detection), None when no family
    claims it (diffusers names, or unknown: the load then says whether it fits)."""
    from backend.families import DECLARATIONS
    from backend.models.files import read_shapes

    try:
        shapes, _ = read_shapes(file)
    except (OSError, ValueError) as exc:
        raise ComponentError(msg(
            "video.component.single_file_unreadable", "--transformer_id {path} cannot be read as safetensors ({error}); "
            "copy the file again", path=file, error=f"{type(exc).__name__}: {str(exc)[:200]}")) from exc
    for declaration in DECLARATIONS:
        detection = declaration.detection
        if detection is None:
            continue
        found = detection.from_keys(shapes, str(file))
        if found is not None:
            return next(d for d in DECLARATIONS if d.name == found.family)
        if detection.part_message(shapes, str(file)) is not None:
            return declaration
    return None


def single_file(folder: Path, component: str) -> Path | None:
    """The single weights file a model view holds for `component`, if one was given for it."""
    path = Path(folder) / component / VIEW_SINGLE_FILE
    return path if path.exists() else None


def load_transformer(folder: Path, subfolder: str, cls: Any, dtype: torch.dtype,
                     prepare: Callable[[dict[str, torch.Tensor], dict[str, Any]], dict[str, torch.Tensor]] | None = None
                     ) -> Any:
    """The denoiser of a diffusers folder or model view: its own weights, or the single file `--transformer_id`
    gave, read with `cls.from_single_file` and the folder's config. `prepare(state, config)` first reshapes a file's
    tensors where diffusers' converter assumes the full-size model (HunyuanVideo's fused single blocks)."""
    from backend.models.errors import ModelFileError
    from backend.models.loading import load_component

    file = single_file(folder, subfolder)
    if file is None:
        return load_component(folder, subfolder, cls, torch_dtype=dtype)

    def read() -> Any:
        source: Any = str(file)
        if prepare is not None:
            from safetensors.torch import load_file

            config = json.loads((folder / subfolder / "config.json").read_text(encoding="utf-8"))
            source = prepare(load_file(str(file)), config)
        return cls.from_single_file(source, config=str(folder), subfolder=subfolder, torch_dtype=dtype,
                                    local_files_only=True)

    try:
        return read()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(
            file.resolve(), msg("video.component.single_file_unloadable", "cannot be read as this model's transformer "
                                "({error})", error=f"{type(exc).__name__}: {first[:300]}"),
            msg("video.component.fix_single_file", "the file must be a transformer of the same model and size as "
                "--pretrained_model_name_or_path (its transformer/config.json gives the architecture), in the "
                "original or diffusers names; give the base folder of the same model version")) from exc


def _link_file(target: Path, link: Path) -> None:
    try:
        link.symlink_to(target)
    except OSError:
        try:
            os.link(target, link)
        except OSError as exc:
            raise _link_error(target, link, exc) from exc


def _link(target: Path, link: Path) -> None:
    """`link` -> `target`: a directory symlink, else a tree of hard-linked files."""
    try:
        link.symlink_to(target, target_is_directory=True)
        return
    except OSError:
        pass
    try:
        for source in target.rglob("*"):
            destination = link / source.relative_to(target)
            if source.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, destination)
    except OSError as exc:
        raise _link_error(target, link, exc) from exc


def _link_error(target: Path, link: Path, error: OSError) -> ComponentError:
    return ComponentError(msg(
        "video.component.link", "cannot link {target} into the model view {link} ({error}): on Windows enable "
        "Developer Mode (symlinks), or keep the component on the same drive as the temp folder (hard links), "
        "or put the component into a copy of the model folder", target=target, link=link, error=error,
    ))
