"""sd-scripts' Hugging Face flags: saves (and states) uploaded as they are written, in the background with
--async_upload, a failed upload logged without losing the files, the Hub checked before training, a state
resumed from the Hub. The Hub itself is a stand-in recording the calls (this machine has no network)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from backend import hub
from backend.options import parse_args
from backend.training import hub_upload
from backend.training.command import run_command
from backend.training.hub_upload import HubUploadConfig, HubUploader, parse_hub_state
from backend.training.preflight import build_plan

from .helpers import base_flags


class FakeHub:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def create_repo(self, **kwargs) -> None:
        self.calls.append(("create_repo", kwargs["repo_id"], kwargs["private"]))

    def upload_file(self, **kwargs) -> None:
        if self.fail:
            raise OSError("503 Service Unavailable")
        self.calls.append(("file", kwargs["path_in_repo"], Path(kwargs["path_or_fileobj"]).is_file()))

    def upload_folder(self, **kwargs) -> None:
        self.calls.append(("folder", kwargs["path_in_repo"], Path(kwargs["folder_path"]).is_dir()))


def test_a_run_uploads_its_saves_and_states_as_they_are_written(tiny, train_dir, tmp_path, monkeypatch, capsys):
    fake = FakeHub()
    monkeypatch.setattr(hub, "hub_unreachable_reason", lambda timeout=5.0: None)
    monkeypatch.setattr(hub_upload, "_api", lambda token: fake)
    out = tmp_path / "out"
    argv = base_flags(tiny.get("sd15").path, train_dir, out, "--max_train_steps", "2", "--save_every_n_steps", "1",
                      "--save_state", "--save_state_to_huggingface", "--huggingface_repo_id", "me/tiny-lora",
                      "--huggingface_path_in_repo", "runs/1", "--async_upload", "--huggingface_token", "hf_secret")
    assert run_command("train_network", argv) == 0, capsys.readouterr().err[-3000:]
    assert fake.calls[0] == ("create_repo", "me/tiny-lora", True)  # private unless said public
    assert sorted(fake.calls[1:]) == [("file", "runs/1/tiny-step00000001.safetensors", True),
                                      ("file", "runs/1/tiny.safetensors", True),
                                      ("folder", "runs/1/tiny-step00000001-state", True)]


def test_a_failed_upload_keeps_the_file_and_is_said(tmp_path, caplog):
    saved = tmp_path / "tiny.safetensors"
    saved.write_bytes(b"weights")
    uploader = HubUploader(HubUploadConfig(huggingface_repo_id="me/x", huggingface_repo_visibility="public"),
                           FakeHub(fail=True))
    with caplog.at_level(logging.ERROR):
        uploader.upload(saved, wait=True)
        uploader.upload(tmp_path, state=True)  # no --save_state_to_huggingface: states stay local
    assert uploader.finish() == [str(saved)] and saved.read_bytes() == b"weights"
    assert "uploading" in caplog.text and "503 Service Unavailable" in caplog.text
    assert uploader.api.calls == [("create_repo", "me/x", False)]


def test_without_the_hub_the_run_is_refused_before_training(tiny, train_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = parse_args("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--huggingface_repo_id", "me/x", "--resume_from_huggingface",
        "--resume", "me/x/tiny-state:main"))
    plan = build_plan(args, "train_network")
    assert plan.errors == [
        "--huggingface_repo_id / --resume_from_huggingface needs the Hugging Face Hub, which cannot be reached: "
        "HF_HUB_OFFLINE is set. Connect this machine, or remove --huggingface_repo_id / --resume_from_huggingface "
        "(the files are saved in the output folder either way)"]


def test_a_state_on_the_hub_is_downloaded_and_resumed_from_the_local_copy(tiny, train_dir, tmp_path, monkeypatch):
    state = tmp_path / "snapshot" / "runs" / "tiny-state"
    state.mkdir(parents=True)
    asked = {}

    def snapshot_download(**kwargs) -> str:
        asked.update(kwargs)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(hub, "hub_unreachable_reason", lambda timeout=5.0: None)
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    args = parse_args("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--resume_from_huggingface", "--resume", "me/x/runs/tiny-state:v2"))
    build_plan(args, "train_network")
    assert args.resume == str(state)
    assert (asked["repo_id"], asked["revision"], asked["repo_type"]) == ("me/x", "v2", "model")
    assert asked["allow_patterns"] == ["runs/tiny-state/*"]


@pytest.mark.parametrize(("given", "parsed"), [
    ("me/x/last-state", ("me/x", "last-state", None, None)),
    ("me/x/a/b-state:main", ("me/x", "a/b-state", "main", "model")),
    ("me/x/s:rev:dataset", ("me/x", "s", "rev", "dataset")),
])
def test_hub_state_names_read_as_sd_scripts_reads_them(given, parsed):
    assert parse_hub_state(given) == parsed
    with pytest.raises(ValueError, match="write it as <owner>/<repo>/<path in repo>"):
        parse_hub_state("only-a-name")
