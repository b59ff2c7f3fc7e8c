"""sd-scripts' Hugging Face flags (library/huggingface_util.py): each saved model, and with
--save_state_to_huggingface each state folder, uploaded to --huggingface_repo_id under
--huggingface_path_in_repo; --async_upload uploads the intermediate saves in the background (the last one is
waited for); --resume_from_huggingface takes --resume as `<repo_id>/<path_in_repo>[:<revision>[:<repo_type>]]`.

Differences from sd-scripts: preflight refuses the run when the Hub cannot be reached (sd-scripts trains for hours
and then logs a failed upload); a failed upload is logged and the files stay on disk, as there, but the run's
end says how many uploads failed. The token (--huggingface_token, else `huggingface-cli login`'s) is a secret.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.training.option_slice import OptionSlice

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubUploadConfig(OptionSlice):
    huggingface_repo_id: str | None = None
    huggingface_repo_type: str | None = None
    huggingface_path_in_repo: str | None = None
    huggingface_token: str | None = None
    huggingface_repo_visibility: str | None = None
    save_state_to_huggingface: bool = False
    async_upload: bool = False

    @property
    def private(self) -> bool:
        """sd-scripts: private unless --huggingface_repo_visibility public."""
        return self.huggingface_repo_visibility != "public"


def _api(token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token or None)


class HubUploader:
    """Uploads a run's saves; `finish` waits for the background ones and says how many failed."""

    def __init__(self, config: HubUploadConfig, api: Any = None):
        self.config = config
        self.api = api if api is not None else _api(config.huggingface_token)
        self.failures: list[str] = []
        self.pending: list[Future] = []
        self._pool = ThreadPoolExecutor(max_workers=1) if config.async_upload else None
        self._repo_ready = False

    def _ensure_repo(self) -> None:
        if self._repo_ready:
            return
        config = self.config
        self.api.create_repo(repo_id=config.huggingface_repo_id, repo_type=config.huggingface_repo_type,
                             private=config.private, exist_ok=True)
        self._repo_ready = True

    def _upload(self, path: Path) -> None:
        config = self.config
        in_repo = f"{config.huggingface_path_in_repo}/{path.name}" if config.huggingface_path_in_repo else path.name
        try:
            self._ensure_repo()
            if path.is_dir():
                self.api.upload_folder(repo_id=config.huggingface_repo_id, repo_type=config.huggingface_repo_type,
                                       folder_path=str(path), path_in_repo=in_repo)
            else:
                self.api.upload_file(repo_id=config.huggingface_repo_id, repo_type=config.huggingface_repo_type,
                                     path_or_fileobj=str(path), path_in_repo=in_repo)
            logger.info(msg("hub.uploaded", "uploaded {path} to {repo}/{in_repo}", path=path,
                            repo=config.huggingface_repo_id, in_repo=in_repo))
        except Exception as exc:  # the file stays where it is; the run goes on, as in sd-scripts
            self.failures.append(str(path))
            logger.error(msg("hub.upload_failed", "uploading {path} to {repo} failed ({error}); the file stays in "
                             "the output folder", path=path, repo=config.huggingface_repo_id,
                             error=f"{type(exc).__name__}: {exc}"))

    def upload(self, path: Path, *, state: bool = False, wait: bool = False) -> None:
        """A saved model (or, with --save_state_to_huggingface, a state folder); `wait`: the run's last save."""
        if state and not self.config.save_state_to_huggingface:
            return
        if self._pool is not None and not wait:
            self.pending.append(self._pool.submit(self._upload, Path(path)))
        else:
            self._upload(Path(path))

    def finish(self) -> list[str]:
        """Wait for the background uploads; the paths whose upload failed."""
        for future in self.pending:
            future.result()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        return self.failures


def hub_problems(config: HubUploadConfig, resume_from_hub: bool) -> list[str]:
    """Preflight: uploads (or a resume from the Hub) need the Hub now, not after hours of training."""
    from backend.hub import hub_unreachable_reason

    wanted = [flag for flag, on in (("--huggingface_repo_id", bool(config.huggingface_repo_id)),
                                    ("--resume_from_huggingface", resume_from_hub)) if on]
    if not wanted:
        return []
    reason = hub_unreachable_reason()
    if reason is None:
        return []
    return [msg("preflight.hub_unreachable", "{flags} needs the Hugging Face Hub, which cannot be reached: {reason}. "
                "Connect this machine, or remove {flags} (the files are saved in the output folder either way)",
                flags=" / ".join(wanted), reason=reason)]


def parse_hub_state(resume: str) -> tuple[str, str, str | None, str | None]:
    """`<owner>/<name>/<path>[:<revision>[:<repo_type>]]` (sd-scripts' --resume with --resume_from_huggingface)
    -> repo id, path in the repo, revision, repo type."""
    parts = resume.split("/")
    if len(parts) < 3 or not parts[0] or not parts[1]:
        raise ValueError(msg(
            "preflight.hub_resume_form", "--resume {value} with --resume_from_huggingface: write it as "
            "<owner>/<repo>/<path in repo>[:<revision>[:<repo type>]], e.g. me/my-lora/last-state:main:model",
            value=resume))
    repo_id, rest = f"{parts[0]}/{parts[1]}", "/".join(parts[2:])
    revision = repo_type = None
    if ":" in rest:
        pieces = rest.split(":")
        rest, revision = pieces[0], pieces[1] or None
        repo_type = pieces[2] if len(pieces) > 2 else "model"
    return repo_id, rest, revision, repo_type


def download_state(resume: str, token: str | None) -> Path:
    """The state folder --resume names on the Hub, downloaded (huggingface_hub's cache); its local path."""
    from huggingface_hub import snapshot_download

    repo_id, in_repo, revision, repo_type = parse_hub_state(resume)
    folder = snapshot_download(repo_id=repo_id, revision=revision, repo_type=repo_type, token=token or None,
                               allow_patterns=[f"{in_repo}/*"])
    local = Path(folder) / in_repo
    if not local.is_dir():
        raise FileNotFoundError(msg("preflight.hub_resume_empty", "{repo} holds no folder {path} (revision {revision})",
                                    repo=repo_id, path=in_repo, revision=revision or "main"))
    return local
