"""sd-scripts' logging flags (--console_log_*) and model-spec flags (--metadata_*) do what they do there: the log
goes to the file at the level asked, and every --metadata_* lands in the saved file's modelspec keys."""

from __future__ import annotations

import base64
import logging

from PIL import Image
from safetensors import safe_open

from backend.training.console_log import ConsoleLogConfig, configure_console_log

from .helpers import base_flags, run_trainer

METADATA = {"author": "me", "description": "a dog", "license": "CC-BY-4.0", "tags": "dog,photo",
            "usage_hint": "say sks dog", "merged_from": "a, b", "trigger_phrase": "sks dog",
            "preprocessor": "none", "is_negative_embedding": "false"}


def test_the_log_goes_to_the_file_and_the_metadata_into_the_model(tiny, train_dir, tmp_path):
    thumbnail = tmp_path / "thumb.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(thumbnail)
    log = tmp_path / "logs" / "run.log"
    flags = [f"--metadata_{name}={value}" for name, value in METADATA.items()]
    result = run_trainer("train_network", *base_flags(
        tiny.get("sd15").path, train_dir, tmp_path / "out", "--max_train_steps", "1", "--console_log_file", str(log),
        "--metadata_thumbnail", str(thumbnail), *flags))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INFO backend" not in result.stderr  # the log went to the file ...
    assert "INFO backend.networks.network: LoRA applied" in log.read_text(encoding="utf-8")
    assert [e["event"] for e in result.events][-1] == "end"  # ... the progress lines did not
    with safe_open(str(tmp_path / "out" / "tiny.safetensors"), "pt") as file:
        metadata = file.metadata()
    assert {name: metadata[f"modelspec.{name}"] for name in METADATA} == METADATA
    mime, data = metadata["modelspec.thumbnail"].split(";base64,")
    assert mime == "data:image/png" and base64.b64decode(data) == thumbnail.read_bytes()


def test_console_log_level_drops_the_lines_below_it(tmp_path):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_console_log(ConsoleLogConfig("WARNING", str(tmp_path / "x.log")))
        logging.getLogger("backend.test").info("not written")
        logging.getLogger("backend.test").warning("written")
        for handler in root.handlers:
            handler.flush()
        assert (tmp_path / "x.log").read_text(encoding="utf-8") == "WARNING backend.test: written\n"
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
