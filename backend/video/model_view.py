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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from backend.messages import msg

# flag -> the component folder of a diffusers pipeline it replaces
COMPONENT_FLAGS = {
    "transformer_id": "transformer", "vae_id": "vae",
    "text_encoder_id": "text_encoder", "text_encoder_2_id": "text_encoder_2", "text_encoder_3_id": "text_encoder_3",
    "tokenizer_id": "tokenizer", "tokenizer_2_id": "tokenizer_2", "tokenizer_3_id": "tokenizer_3",
}  # fmt: skip
VIEWS = "kohya_video_model_views"


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
    for component, folder in given.items():
        if component not in index:
            raise ComponentError(msg(
                "video.component.unknown", "--{flag}: this model has no {component} (its components: {known})",
                flag=flags[component], component=component,
                known=", ".join(k for k in index if not k.startswith("_"))))
        links[component] = component_folder(flags[component], folder, component).resolve()
    for entry in sorted(base.iterdir()):
        if entry.is_dir() and entry.name not in links:
            links[entry.name] = entry.resolve()
    key = hashlib.sha256(json.dumps({k: str(v) for k, v in sorted(links.items())}).encode()).hexdigest()[:16]
    view = Path(tempfile.gettempdir()) / VIEWS / key
    if (view / "model_index.json").is_file():
        return view
    building = view.with_name(f"{key}.{uuid.uuid4().hex[:8]}.part")
    building.mkdir(parents=True)
    try:
        shutil.copyfile(index_file, building / "model_index.json")
        for name, target in links.items():
            _link(target, building / name)
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
        raise ComponentError(msg(
            "video.component.link", "cannot link {target} into the model view {link} ({error}): on Windows enable "
            "Developer Mode (symlinks), or keep the component on the same drive as the temp folder (hard links), "
            "or put the component into a copy of the model folder", target=target, link=link, error=exc,
        )) from exc
