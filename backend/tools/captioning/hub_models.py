"""Finding the captioning and tagging models: a local folder, the Hugging Face cache, or a download.

Rules, the same for real models and the project's tiny test models:
- a path to an existing folder is used as it is (nothing is downloaded);
- a hub id (`owner/name`) is looked up in the Hugging Face cache first (`HF_HUB_CACHE`/`HF_HOME`),
  without touching the network, and downloaded (with progress bars on stderr) only when absent;
- when it is absent and cannot be downloaded (offline, `HF_HUB_OFFLINE=1`, no network, a private
  repository), the error names the model id, where it was looked for and the option that points
  at a local copy, instead of a traceback.

Only the files a model needs are downloaded: configs, tokenizer and one weight format
(safetensors when the repository has it; many older repositories also carry TensorFlow and
PyTorch .bin copies of the same weights, which would triple the download).

WD14 taggers follow sd-scripts' layout: `<model_dir>/<owner>_<name>/model.onnx` and
`selected_tags.csv`. A `--model_dir` that itself holds both files is also accepted, so a copy
downloaded by hand can be used directly; a folder holding only some of the files (for example an
old TensorFlow download, the cause of kohya_ss's "onnx model not found") gets the missing ones.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from huggingface_hub import constants

from backend.hub import hub_unreachable_reason
from backend.messages import msg
from backend.tools.cli.arg_checks import one_line_path
from backend.tools.cli.light_cli import InputError

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUPPORT_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken"]  # configs, tokenizer, vocab
TAGGER_FILES = ("model.onnx", "selected_tags.csv")


def _unreachable() -> str | None:
    """Why nothing can be downloaded now (offline mode, no network), asked once before trying (backend/hub.py)."""
    if constants.HF_HUB_OFFLINE:
        return _offline_reason()
    return hub_unreachable_reason()


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def _not_available(what: str, model_id: str, where: str | Path, option: str, reason: str) -> InputError:
    """`what`: the model's name (BLIP, GIT)."""
    return InputError(msg(
        "tool.hub_model_unavailable", "the {what} model {model_id} is not in {where} and could not be downloaded "
        "({reason}); connect to the internet once to download it (it is kept and reused), or download the model "
        "folder from {url} on another machine and pass the folder with {option} PATH/TO/FOLDER",
        what=what, model_id=repr(model_id), where=where, reason=reason, url=f"https://huggingface.co/{model_id}",
        option=option,
    ))


def _tagger_not_available(repo_id: str, where: Path, reason: str) -> InputError:
    return InputError(msg(
        "tool.hub_tagger_unavailable", "the tagger model {model_id} is not in {where} and could not be downloaded "
        "({reason}); connect to the internet once to download it (it is kept and reused), or download model.onnx and "
        "selected_tags.csv from {url} on another machine and pass the folder with --model_dir PATH/TO/FOLDER",
        model_id=repr(repo_id), where=where, reason=reason, url=f"https://huggingface.co/{repo_id}",
    ))


def _offline_reason() -> str:
    return msg("tool.hub_offline", "HF_HUB_OFFLINE is set")


def resolve_pretrained(model_id: str, what: str, option: str = "--model_id") -> Path:
    """A folder holding a transformers model (config, weights, processor) for `model_id`; `what` names
    the model in messages (BLIP, GIT)."""
    one_line_path(model_id, option)
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(msg(
                "tool.hub_folder_not_transformers", "{option} {path} is a folder but not a transformers model: it has "
                "no config.json (pass the folder that holds config.json, the weights and the processor files)",
                option=option, path=path,
            ))
        return path
    if not _HUB_ID.match(model_id) or path.exists():
        raise InputError(msg(
            "tool.hub_not_model_id", "{option} {model_id} is neither an existing model folder nor a Hugging Face model "
            "id such as 'Salesforce/blip-image-captioning-large'", option=option, model_id=repr(model_id),
        ))
    from huggingface_hub import snapshot_download

    cache = constants.HF_HUB_CACHE
    try:
        cached = Path(snapshot_download(model_id, allow_patterns=_SUPPORT_FILES + ["*.safetensors", "*.bin"],
                                        local_files_only=True))
        if (cached / "config.json").is_file() and _has_weights(cached):
            logger.info(msg("tool.hub_using_cached", "using {model_id} from the Hugging Face cache: {path}",
                            model_id=model_id, path=cached))
            return cached
    except Exception:  # not cached (or an unreadable cache entry): download below
        pass
    unreachable = _unreachable()
    if unreachable:
        raise _not_available(what, model_id, _hf_cache(cache), option, unreachable)
    try:
        from huggingface_hub import HfApi

        files = [s.rfilename for s in HfApi().model_info(model_id).siblings or []]
        weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
        logger.info(msg("tool.hub_downloading", "downloading {model_id} from the Hugging Face Hub into {path} (once; "
                        "reused afterwards)", model_id=model_id, path=cache))
        folder = Path(snapshot_download(model_id, allow_patterns=_SUPPORT_FILES + weights))
    except Exception as exc:  # network, authentication, missing repository: all end here for the user
        raise _not_available(what, model_id, _hf_cache(cache), option, _reason(exc)) from None
    return folder


def _hf_cache(cache: str | Path) -> str:
    return msg("tool.hub_cache", "the Hugging Face cache ({path})", path=cache)


def tagger_folder(repo_id: str, model_dir: str | os.PathLike[str], force_download: bool = False) -> Path:
    """The folder holding model.onnx and selected_tags.csv of the WD14 tagger `repo_id` (see module doc)."""
    one_line_path(model_dir, "--model_dir")
    model_dir = Path(model_dir).expanduser()
    if model_dir.exists() and not model_dir.is_dir():
        raise InputError(msg("tool.model_dir_is_file", "--model_dir must be a folder, but {path} is a file",
                             path=model_dir))
    if not force_download and all((model_dir / name).is_file() for name in TAGGER_FILES):
        logger.info(msg("tool.hub_using_tagger", "using the tagger in {path}", path=model_dir))
        return model_dir
    if not _HUB_ID.match(repo_id):
        raise InputError(msg(
            "tool.hub_bad_repo_id", "--repo_id {repo_id} is not a Hugging Face model id like "
            "'SmilingWolf/wd-v1-4-convnext-tagger-v2' (taggers in a subfolder of a repository are not supported; to "
            "use a local copy, pass --model_dir pointing at a folder that holds model.onnx and selected_tags.csv)",
            repo_id=repr(repo_id),
        ))
    location = model_dir / repo_id.replace("/", "_")
    missing = [name for name in TAGGER_FILES if force_download or not (location / name).is_file()]
    if not missing:
        logger.info(msg("tool.hub_using_downloaded_tagger", "using the downloaded tagger in {path}", path=location))
        return location
    unreachable = _unreachable()
    if unreachable:
        raise _tagger_not_available(repo_id, location, unreachable)
    from huggingface_hub import hf_hub_download

    logger.info(msg("tool.hub_downloading_tagger", "downloading {files} of {repo_id} from the Hugging Face Hub into "
                    "{path}", files=", ".join(missing), repo_id=repo_id, path=location))
    try:
        for name in missing:
            hf_hub_download(repo_id, name, local_dir=location, force_download=force_download)
    except Exception as exc:
        raise _tagger_not_available(repo_id, location, _reason(exc)) from None
    return location


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
