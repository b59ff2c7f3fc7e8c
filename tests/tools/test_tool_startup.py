"""Every tool answers bad input at once: its arguments are checked before torch & co. are imported,
no output may replace an input (the same path, a symlink, a hard link, a folder holding it), and no
path may hold a line break, a tab or another control character (the trainer's rule for its paths).

One subprocess per tool runs the tool's bad invocations through its real `__main__` (runpy) and
reports the exit status, stderr and which heavy modules got imported; none may be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.end_to_end.helpers import REPO

HEAVY = ("torch", "safetensors.torch", "diffusers", "transformers", "onnxruntime", "accelerate")
DRIVER = r"""
import contextlib, io, json, runpy, sys
module, cases, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
results = []
for argv in cases:
    sys.argv = [module, *argv]
    err, code = io.StringIO(), 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit_:
            code = exit_.code
    results.append({"code": code, "stderr": err.getvalue(), "heavy": [m for m in heavy if m in sys.modules]})
print(json.dumps(results))
"""

CONTROL = "a path must be one line without control characters"
# tool -> [(argv, what stderr must say)]; run in a folder made by `workdir`.
CASES: dict[str, list[tuple[list[str], str]]] = {
    "resize_lora": [
        (["--model", "missing.safetensors", "--save_to", "out.safetensors", "--new_rank", "4"],
         "--model missing.safetensors: LoRA file not found"),
        (["--model", "lora.safetensors", "--save_to", "lora.safetensors"],
         "--save_to lora.safetensors is the same file as --model lora.safetensors"),
        (["--model", "lora.safetensors", "--save_to", "symlink.safetensors"], "is the same file as --model"),
        (["--model", "lora.safetensors", "--save_to", "hardlink.safetensors"], "is the same file as --model"),
        (["--model", "lora.safetensors", "--save_to", "images/../lora.safetensors"], "is the same file as --model"),
        (["--model", "lora.safetensors", "--save_to", "model.safetensors", "--dynamic_method", "fro_ckpt",
          "--dynamic_param", "-3", "--base_model", "model.safetensors"], "is the same file as --base_model"),
        (["--model", "lora.safetensors", "--save_to", "out.safetensors", "--new_rank", "0"],
         "--new_rank must be 1 or more"),
        (["--model", "lora.safetensors", "--save_to", "images"], "--save_to images is a folder"),
        (["--model", "lora.safetensors", "--save_to", "afile.txt/out.safetensors"], "is a file, not a folder"),
        (["--model", "images", "--save_to", "out.safetensors"], "--model images is a folder"),
        (["--model", "lora.safetensors", "--save_to", "out\n.safetensors"], f"--save_to: {CONTROL}"),
        (["--model", "lora\r.safetensors", "--save_to", "out.safetensors"], f"--model: {CONTROL}"),
    ],
    "merge_lora": [
        (["--models", "missing.safetensors", "--save_to", "out.safetensors"], "LoRA file not found"),
        (["--models", "lora.safetensors", "lora2.safetensors", "--save_to", "lora2.safetensors"],
         "is the same file as --models lora2.safetensors"),
        (["--sd_model", "model.safetensors", "--models", "lora.safetensors", "--save_to", "model.safetensors"],
         "is the same file as --sd_model"),
        (["--sd_model", "diffusers", "--models", "lora.safetensors", "--save_to", "diffusers"],
         "is the same folder as --sd_model"),
        (["--sd_model", "diffusers2", "--models", "diffusers/in.safetensors", "--save_to", "diffusers"],
         "--save_to diffusers is the folder holding --models"),
        (["--models", "lora.safetensors", "lora2.safetensors", "--ratios", "1", "--save_to", "out.safetensors"],
         "2 models but 1 ratios"),
        (["--models", "lora.safetensors", "--save_to", "out.safetensors", "--sd_model", "mo\tdel.safetensors"],
         f"--sd_model: {CONTROL}"),
    ],
    "convert_lora": [
        (["--model", "missing.safetensors", "--save_to", "out.safetensors"], "LoRA file not found"),
        (["--model", "lora.safetensors", "--save_to", "symlink.safetensors"], "is the same file as --model"),
        (["--model", "lora.safetensors", "--save_to", "out.txt"], "must end in .safetensors"),
        (["--model", "lora.safetensors", "--save_to", "o\u2028ut.safetensors"], f"--save_to: {CONTROL}"),
    ],
    "inspect_lora": [
        (["missing.safetensors"], "LoRA file not found"),
        (["afile.txt"], "expected a LoRA file ending in .safetensors"),
        (["lora\n.safetensors"], f"the path: {CONTROL}"),
    ],
    "extract_lora_from_models": [
        (["--model_org", "missing", "--model_tuned", "model.safetensors", "--save_to", "out.safetensors"],
         "--model_org missing: model not found"),
        (["--model_org", "diffusers", "--model_tuned", "model.safetensors", "--save_to", "model.safetensors"],
         "is the same file as --model_tuned"),
        (["--model_org", "model.safetensors", "--model_tuned", "symlink-model.safetensors", "--save_to", "o.safetensors"],
         "are the same model"),
        (["--model_org", "images", "--model_tuned", "model.safetensors", "--save_to", "out.safetensors"],
         "is a folder without model_index.json"),
        (["--model_org", "diffusers", "--model_tuned", "model.safetensors", "--save_to", "o.safetensors",
          "--clamp_quantile", "0"], "--clamp_quantile must be above 0"),
        (["--model_org", "diff\nusers", "--model_tuned", "model.safetensors", "--save_to", "o.safetensors"],
         f"--model_org: {CONTROL}"),
    ],
    "make_tiny_model": [
        (["--arch", "sd15", "--out", "afile.txt"], "--out afile.txt is a file"),
        (["--arch", "sd15", "--out", "user_files"], "holds other files than a model"),
        (["--arch", "wd14", "--out", "user_files"], "holds other files than a model (no model.onnx)"),
        (["--arch", "sd15", "--out", "tiny\nmodel"], f"--out: {CONTROL}"),
    ],
    "prepare_buckets_latents": [
        (["missing", "meta.json", "out.json", "model.safetensors"], "image folder not found"),
        (["images", "meta.json", "model.safetensors", "model.safetensors"],
         "out_json model.safetensors is the same file as model_name_or_path"),
        (["images", "meta.json", "out.json", "missing.safetensors"], "model not found"),
        (["images", "meta.json", "out.json", "model.safetensors", "--batch_size", "0"], "--batch_size must be 1"),
        (["images", "meta.json", "out.json", "model.safetensors", "--tokenizer_cache_dir", "cache\n"],
         f"--tokenizer_cache_dir: {CONTROL}"),
    ],
    "clean_captions_and_tags": [
        (["missing.json", "out.json"], "metadata file not found"),
        (["meta.json", "images"], "out_json images is a folder"),
        (["meta.json", "out\n.json"], f"out_json: {CONTROL}"),
    ],
    "merge_captions_to_metadata": [
        (["missing", "out.json"], "image folder not found"),
        (["images", "images"], "out_json images is a folder"),
        (["ima\tges", "out.json"], f"image folder: {CONTROL}"),
    ],
    "merge_dd_tags_to_metadata": [(["missing", "out.json"], "image folder not found")],
    "make_captions": [
        (["missing"], "image folder does not exist"),
        (["images", "--max_length", "1"], "--max_length must be 2 or more"),
        (["images", "--beam_search", "--num_beams", "0"], "--num_beams must be 1 or more with --beam_search"),
        (["images\n"], f"image folder: {CONTROL}"),
        (["images", "--model_id", "./blip\n"], f"--model_id: {CONTROL}"),
    ],
    "make_captions_by_git": [(["missing"], "image folder does not exist")],
    "tag_images_by_wd14_tagger": [
        (["missing"], "image folder does not exist"),
        (["images", "--model_dir", "tagger\x7f"], f"--model_dir: {CONTROL}"),
    ],
    "basic_caption": [(["missing", "--caption_text", "x"], "image folder does not exist")],
    "prepare_dataset": [
        (["out", "--concept", "missing", "sks", "dog"], "concept folder does not exist"),
        (["o\nut", "--concept", "images", "sks", "dog"], f"out: {CONTROL}"),
        (["out", "--concept", "images", "sks", "d\u202eog"], "must be one line without control characters"),
        (["out", "--concept", "images", "sks", "dog", "--caption_extension", ".t\nxt"],
         "--caption_extension: must be one line without control characters"),
    ],
    "verify_dataset": [
        (["missing"], "train_data_dir does not exist"),
        (["images", "--reg_data_dir", "r\neg"], f"reg_data_dir: {CONTROL}"),
    ],
    "generate": [
        (["--pretrained_model_name_or_path", "missing.safetensors", "--outdir", "out", "--prompt", "a dog"],
         "model not found"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "out", "--prompt", "a dog",
          "--network", "missing.safetensors:0.5"], "--network missing.safetensors: network file not found"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "afile.txt", "--prompt", "a dog"],
         "--outdir afile.txt is a file"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "out"], "no prompt"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "out", "--prompt", "a dog --x 3"],
         "unknown option --x"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "out", "--prompt", "a dog",
          "--xy", "weight=0,1", "cfg=5,7"], "no network to weigh"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "out", "--prompt", "a dog",
          "--xy", "colour=1", "cfg=5"], "expected AXIS=VALUES"),
        (["--pretrained_model_name_or_path", "model.safetensors", "--outdir", "o\nut", "--prompt", "a dog"],
         f"--outdir: {CONTROL}"),
    ],
    "verify_video_dataset": [
        (["missing"], "data_root does not exist"),
        (["vid\neos"], f"data_root: {CONTROL}"),
        (["images", "--model_name", "sora"], "invalid choice"),
    ],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs whose content is never read: every case must be refused before a file is opened."""
    root = tmp_path_factory.mktemp("startup")
    for name in ("lora.safetensors", "lora2.safetensors", "model.safetensors", "afile.txt"):
        (root / name).write_bytes(b"not read before the arguments are checked")
    (root / "symlink.safetensors").symlink_to(root / "lora.safetensors")
    (root / "symlink-model.safetensors").symlink_to(root / "model.safetensors")
    os.link(root / "lora.safetensors", root / "hardlink.safetensors")
    for folder in ("diffusers", "diffusers2"):
        (root / folder).mkdir()
        (root / folder / "model_index.json").write_text("{}", encoding="utf-8")
    (root / "diffusers" / "in.safetensors").write_bytes(b"x")
    (root / "images").mkdir()
    (root / "images" / "a.png").write_bytes(b"x")
    (root / "meta.json").write_text('{"a": {"caption": "a dog"}}', encoding="utf-8")
    (root / "user_files").mkdir()
    (root / "user_files" / "notes.txt").write_text("mine", encoding="utf-8")
    return root


def tool_modules() -> set[str]:
    """The documented commands (backend/tools/<tool>.py) and the tiny-model maker (devtools/)."""
    found = set()
    for folder in (REPO / "backend" / "tools", REPO / "devtools"):
        found |= {p.stem for p in folder.glob("*.py") if '__name__ == "__main__"' in p.read_text(encoding="utf-8")}
    return found


def module_of(tool: str) -> str:
    return "devtools.make_tiny_model" if tool == "make_tiny_model" else f"backend.tools.{tool}"


def test_every_tool_has_bad_input_cases() -> None:
    assert set(CASES) == tool_modules()


@pytest.mark.parametrize("tool", sorted(CASES))
def test_bad_input_is_refused_before_heavy_imports(tool: str, workdir: Path) -> None:
    before = sorted(p.name for p in workdir.rglob("*"))
    argvs = [argv for argv, _ in CASES[tool]]
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, module_of(tool), json.dumps(argvs), json.dumps(HEAVY)], cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for (argv, expected), outcome in zip(CASES[tool], json.loads(result.stdout.splitlines()[-1]), strict=True):
        assert outcome["code"] == 2, (argv, outcome)
        assert expected in outcome["stderr"], (argv, outcome["stderr"])
        assert outcome["heavy"] == [], (argv, outcome["heavy"])
    assert sorted(p.name for p in workdir.rglob("*")) == before  # nothing written, not even a folder
