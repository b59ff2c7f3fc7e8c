"""`--push_to_hub`: the finished run's output folder uploaded to `--hub_model_id` (finetrainers uploads its
output folder too). The token is `--hub_token`, else the one `huggingface-cli login` stored; it is a secret
(never written to run files or exports: backend/options marks it). Preflight has checked that the Hub can
be reached; a failure here keeps the trained files and says so."""

from __future__ import annotations

from pathlib import Path

from backend.messages import msg
from backend.training.run_errors import RunStopped

# What is not uploaded: training states (large, of use only for resuming) and logs.
IGNORED = ["finetrainers_step_*/**", "finetrainers_step_*", "logs/**", "*.partial/**"]


def push_output(output_dir: str, repo_id: str, token: str | None, private: bool = False) -> str:
    """Upload `output_dir` (no training states); returns the repository's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or None)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(Path(output_dir)), repo_id=repo_id, ignore_patterns=IGNORED,
                          commit_message="Upload from kohya train_video")
    except Exception as exc:  # the trained files stay where they are either way
        raise RunStopped(msg(
            "video.upload_failed", "the run finished and its files are in {folder}, but uploading them to {repo} failed "
            "({error})", folder=output_dir, repo=repo_id, error=f"{type(exc).__name__}: {exc}",
        )) from exc
    return str(url)
