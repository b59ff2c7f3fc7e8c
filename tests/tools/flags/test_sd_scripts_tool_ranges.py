"""No range or choice check of a tool refuses a value the same sd-scripts tool takes, unless a reason
is written (sd-scripts at commit 48d368fa: finetune/make_captions.py, make_captions_by_git.py,
tag_images_by_wd14_tagger.py, prepare_buckets_latents.py, networks/resize_lora.py, merge_lora.py,
svd_merge_lora.py, extract_lora_from_models.py).

sd-scripts' tools have types but no ranges of their own. Each row is a value their parser takes:
either ours takes it too (`REASON` None; where it does nothing here or acts like another value, a
warning says so), or the row gives the reason ours refuses it (sd-scripts fails on it too, later,
or writes a broken result). The reasons are the ones written in the tools' docstrings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.tools.captioning import make_captions, make_captions_by_git, tag_images_by_wd14_tagger
from backend.tools.cli.light_cli import InputError
from backend.tools.lora import extract_lora_from_models, merge_lora, resize_lora
from backend.tools.metadata import prepare_buckets_latents

SD_SCRIPTS_FAILS = "sd-scripts fails on it too, after loading the model"
RANK_ZERO = "a rank below 1 writes rank-0 modules, whose alpha loaders divide by 0 (sd-scripts writes them)"
NOT_FINITE = "NaN or infinity makes the result NaN/inf or chooses ranks by accident (sd-scripts writes that)"
PROMPT_LENGTH = "transformers' generate refuses max_length at or below the 1-token prompt (sd-scripts: empty captions)"
QUANTILE_ZERO = "clamps every weight to one value: the LoRA is destroyed (sd-scripts writes that)"

# (tool, extra argv, reason ours refuses it or None, warning expected)
ROWS: list[tuple[str, list[str], str | None, bool]] = [
    ("make_captions", ["--batch_size", "0"], None, True),  # sd-scripts: one image at a time
    ("make_captions", ["--batch_size", "-3"], None, True),
    ("make_captions", ["--top_p", "0"], None, False),  # nucleus sampling down to the single most likely token
    ("make_captions", ["--top_p", "1.5", "--beam_search"], None, False),  # not used with beam search
    ("make_captions", ["--num_beams", "0"], None, False),  # not used without --beam_search
    ("make_captions", ["--min_length", "10", "--max_length", "8"], None, True),
    ("make_captions", ["--min_length", "-1"], None, False),
    ("make_captions", ["--max_data_loader_n_workers", "0"], None, False),
    ("make_captions", ["--max_length", "1"], PROMPT_LENGTH, False),
    ("make_captions", ["--num_beams", "0", "--beam_search"], SD_SCRIPTS_FAILS, False),
    ("make_captions", ["--top_p", "1.5"], "sd-scripts' transformers refuses top_p above 1 too", False),
    ("make_captions", ["--max_data_loader_n_workers", "-1"], "sd-scripts' DataLoader refuses it too", False),
    ("make_captions_by_git", ["--batch_size", "0"], None, True),
    ("make_captions_by_git", ["--max_length", "1"], PROMPT_LENGTH, False),
    ("tag_images_by_wd14_tagger", ["--batch_size", "0"], None, True),
    ("tag_images_by_wd14_tagger", ["--thresh", "-1"], None, False),  # every tag, as in sd-scripts
    ("tag_images_by_wd14_tagger", ["--general_threshold", "-0.5", "--character_threshold", "2"], None, False),
    ("resize_lora", ["--new_rank", "0"], RANK_ZERO, False),
    ("resize_lora", ["--new_conv_rank", "0"], RANK_ZERO, False),
    ("resize_lora", ["--dynamic_method", "sv_ratio", "--dynamic_param", "nan"], NOT_FINITE, False),
    ("resize_lora", ["--dynamic_method", "sv_fro", "--dynamic_param", "0.9", "--new_rank", "64"], None, False),
    ("merge_lora", ["--ratios", "-1"], None, False),
    ("merge_lora", ["--ratios", "inf"], NOT_FINITE, False),
    ("merge_lora", ["--new_rank", "0"], RANK_ZERO, False),
    ("extract_lora_from_models", ["--min_diff", "-1"], None, False),  # every layer is extracted
    ("extract_lora_from_models", ["--min_diff", "0"], None, False),
    ("extract_lora_from_models", ["--clamp_quantile", "1"], None, False),
    ("extract_lora_from_models", ["--clamp_quantile", "0"], QUANTILE_ZERO, False),
    ("extract_lora_from_models", ["--clamp_quantile", "1.5"], SD_SCRIPTS_FAILS, False),
    ("extract_lora_from_models", ["--dim", "0"], SD_SCRIPTS_FAILS, False),
    ("prepare_buckets_latents", ["--batch_size", "0"], SD_SCRIPTS_FAILS, False),
]


def _files(root: Path) -> dict[str, str]:
    (root / "lora.safetensors").write_bytes(b"x")
    (root / "model.safetensors").write_bytes(b"x")
    (root / "tuned.safetensors").write_bytes(b"y")
    return {name: str(root / name) for name in ("lora.safetensors", "model.safetensors", "tuned.safetensors")}


def checker(tool: str, root: Path) -> tuple[Callable[[list[str]], argparse.Namespace], Callable[[argparse.Namespace], object]]:
    """(parse extra argv with the tool's required arguments, the tool's option check)."""
    files = _files(root)
    out = str(root / "out.safetensors")
    required = {
        "make_captions": [str(root)],
        "make_captions_by_git": [str(root)],
        "tag_images_by_wd14_tagger": [str(root)],
        "resize_lora": ["--model", files["lora.safetensors"], "--save_to", out],
        "merge_lora": ["--models", files["lora.safetensors"], "--save_to", out],
        "extract_lora_from_models": ["--model_org", files["model.safetensors"], "--model_tuned",
                                     files["tuned.safetensors"], "--save_to", out],
        "prepare_buckets_latents": [str(root), "in.json", "out.json", files["model.safetensors"]],
    }[tool]
    module = {
        "make_captions": make_captions, "make_captions_by_git": make_captions_by_git,
        "tag_images_by_wd14_tagger": tag_images_by_wd14_tagger, "resize_lora": resize_lora, "merge_lora": merge_lora,
        "extract_lora_from_models": extract_lora_from_models, "prepare_buckets_latents": prepare_buckets_latents,
    }[tool]
    check = prepare_buckets_latents.check_numbers if tool == "prepare_buckets_latents" else module.check_args
    return (lambda extra: module.build_parser().parse_args([*required, *extra])), check


@pytest.mark.parametrize(("tool", "argv", "reason", "warns"), ROWS, ids=[f"{t} {' '.join(a)}" for t, a, _, _ in ROWS])
def test_a_value_sd_scripts_takes_is_taken_or_refused_for_a_written_reason(
    tool: str, argv: list[str], reason: str | None, warns: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parse, check = checker(tool, tmp_path)
    args = parse(argv)
    if reason is None:
        check(args)
        assert ("warning: " in capsys.readouterr().err) == warns
        return
    with pytest.raises(InputError) as refused:
        check(args)
    assert any(flag in str(refused.value) for flag in argv if flag.startswith("--"))  # the message names the flag


def test_a_batch_size_below_one_works_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parse, check = checker("make_captions", tmp_path)
    args = parse(["--batch_size", "0"])
    check(args)
    assert args.batch_size == 1
    assert "--batch_size 0 is taken as 1" in capsys.readouterr().err
