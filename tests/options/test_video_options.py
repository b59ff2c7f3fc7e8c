"""train_video takes finetrainers' command line and TOML unchanged, and explains what it does not take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import toml

from backend.options import parse_args
from backend.options.__main__ import main
from backend.options.finetrainers_flags import (
    GROUPS,
    REMOVED,
    TAKEN_FROM_V0_0,
    finetrainers_flag,
    finetrainers_flags,
)
from backend.options.output import write_config
from backend.options.schema import VIDEO_COMMANDS, all_options, options_for
from gui.training.command_builder import write_run_config, write_snapshot
from tests.options.helpers import problems

VIDEO = "train_video"
TARGET = "(transformer_blocks|single_transformer_blocks).*(to_q|to_k|to_v|to_out.0)"

# finetrainers' examples/training/sft/ltx_video/crush_smol_lora/train.sh (f476c371), its arrays expanded:
# DDP_2, model, dataset, dataloader, diffusion, training, optimizer, validation and miscellaneous flags.
LTX_LORA = [
    "--parallel_backend", "ptd", "--pp_degree", "1", "--dp_degree", "2", "--dp_shards", "1",
    "--cp_degree", "1", "--tp_degree", "1",
    "--model_name", "ltx_video", "--pretrained_model_name_or_path", "a-r-r-o-w/LTX-Video-diffusers",
    "--dataset_config", "examples/training/sft/ltx_video/crush_smol_lora/training.json",
    "--dataset_shuffle_buffer_size", "10", "--enable_precomputation", "--precomputation_items", "25",
    "--precomputation_once",
    "--dataloader_num_workers", "0",
    "--flow_weighting_scheme", "logit_normal",
    "--training_type", "lora", "--seed", "42", "--batch_size", "1", "--train_steps", "5000",
    "--rank", "32", "--lora_alpha", "32", "--target_modules", TARGET,
    "--gradient_accumulation_steps", "1", "--gradient_checkpointing", "--checkpointing_steps", "1000",
    "--checkpointing_limit", "2", "--enable_slicing", "--enable_tiling",
    "--optimizer", "adamw", "--lr", "5e-5", "--lr_scheduler", "constant_with_warmup", "--lr_warmup_steps", "1000",
    "--lr_num_cycles", "1", "--beta1", "0.9", "--beta2", "0.99", "--weight_decay", "1e-4", "--epsilon", "1e-8",
    "--max_grad_norm", "1.0",
    "--validation_dataset_file", "examples/training/sft/ltx_video/crush_smol_lora/validation.json",
    "--validation_steps", "500",
    "--tracker_name", "finetrainers-ltxvideo", "--output_dir", "/raid/aryan/ltx-video", "--init_timeout", "600",
    "--nccl_timeout", "600", "--report_to", "wandb",
]  # fmt: skip
EXPECTED = {
    "parallel_backend": "ptd", "dp_degree": 2, "model_name": "ltx_video",
    "pretrained_model_name_or_path": "a-r-r-o-w/LTX-Video-diffusers",
    "dataset_config": "examples/training/sft/ltx_video/crush_smol_lora/training.json",
    "dataset_shuffle_buffer_size": 10, "enable_precomputation": True, "precomputation_items": 25,
    "precomputation_once": True, "precomputation_reuse": False, "flow_weighting_scheme": "logit_normal",
    "training_type": "lora", "seed": 42, "train_steps": 5000, "rank": 32, "lora_alpha": 32,
    "target_modules": [TARGET], "gradient_checkpointing": True, "checkpointing_limit": 2, "enable_tiling": True,
    "optimizer": "adamw", "lr": 5e-5, "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 1000,
    "beta2": 0.99, "beta3": None, "weight_decay": 1e-4, "validation_steps": 500, "init_timeout": 600,
    "report_to": "wandb", "output_dir": "/raid/aryan/ltx-video", "pin_memory": False, "flow_shift": 1.0,
    "layerwise_upcasting_modules": [], "transformer_dtype": "bf16", "hub_token": None,
}  # fmt: skip

# train_video options that share an image command's declaration and keep its default, where
# finetrainers' parser default differs (the schema has no per-command defaults).
SHARED_DEFAULT_DIFFERENCES = {"lr_warmup_steps": 500, "output_dir": "finetrainers-training", "logging_dir": "logs"}
# finetrainers flags train_video does not declare, refused as "not implemented".
NOT_DECLARED = {
    "max_data_samples", "verbose", "compile_modules", "compile_scopes", "float32_matmul_precision", "list_models",
    "attn_provider_training", "attn_provider_inference", *GROUPS["control"],
}  # fmt: skip


def test_a_finetrainers_ltx_video_lora_command_line_parses() -> None:
    args = parse_args(VIDEO, LTX_LORA)
    assert {name: getattr(args, name) for name in EXPECTED} == EXPECTED


def test_the_same_run_as_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        '[model]\nmodel_name = "ltx_video"\npretrained_model_name_or_path = "/models/ltx"\n'
        'layerwise_upcasting_modules = ["transformer"]\n'
        '[dataset]\ndataset_config = "training.json"\nenable_precomputation = true\n'
        f'[network]\nrank = 32\ntarget_modules = ["{TARGET}", "ff.net.0.proj"]\n'
        '[basic]\ntraining_type = "lora"\nlr = 5e-5\nlr_warmup_steps = 1000\n'
        '[saving]\noutput_dir = "/out"\ncheckpointing_limit = 2\n',
        encoding="utf-8",
    )
    args = parse_args(VIDEO, ["--config_file", str(config), "--rank", "16"])  # the command line wins
    assert (args.model_name, args.rank, args.target_modules) == ("ltx_video", 16, [TARGET, "ff.net.0.proj"])
    assert (args.layerwise_upcasting_modules, args.enable_precomputation, args.lr) == (["transformer"], True, 5e-5)
    assert (args.dataset_config, args.checkpointing_limit, args.lr_warmup_steps) == ("training.json", 2, 1000)


def test_a_misspelt_flag_gets_the_nearest_name() -> None:
    assert problems(VIDEO, [*LTX_LORA, "--lora_alhpa", "8"]) == [
        'unknown option "--lora_alhpa" (did you mean "--lora_alpha"?)'
    ]


def test_an_undeclared_finetrainers_flag_is_not_implemented_and_a_v0_0_flag_names_its_successor() -> None:
    assert problems(VIDEO, [*LTX_LORA, "--compile_modules", "transformer", "--validation_images", "/v"]) == [
        '"--compile_modules" is a finetrainers option that this trainer does not implement; remove it',
        '"--validation_images" is an option of finetrainers v0.0.x that finetrainers v0.1 removed; train_video '
        "takes the current options: use --validation_dataset_file instead",
    ]
    # v0.0.x's data flags are still taken (its tutorials describe the data on the command line).
    args = parse_args(VIDEO, [*LTX_LORA, "--data_root", "/v", "--video_resolution_buckets", "49x512x768"])
    assert (args.data_root, args.video_resolution_buckets) == ("/v", ["49x512x768"])
    assert problems(VIDEO, [*LTX_LORA, "--compile_module", "x"]) == [
        'unknown option "--compile_module" (did you mean "--compile_modules"? That finetrainers option is not '
        "implemented by this trainer)"
    ]


def test_sd_scripts_flags_belong_to_the_image_commands_and_back() -> None:
    assert problems(VIDEO, [*LTX_LORA, "--network_dim", "4"]) == [
        '"--network_dim" is not accepted by train_video; only train_network, sdxl_train_network, '
        "flux_train_network, sd3_train_network accept it"
    ]
    assert '"--lr" is not accepted by train_network; only train_video accept it' in problems(
        "train_network", ["--lr", "1e-4"]
    )


def test_refused_values_say_why() -> None:
    (model,) = problems(VIDEO, [*LTX_LORA, "--model_name", "flux"])
    assert "must be one of cogvideox, hunyuan_video, ltx_video, wan" in model and "cogview4 and flux" in model
    (training,) = problems(VIDEO, [*LTX_LORA, "--training_type", "control-lora"])
    assert "control-lora and control-full-finetune" in training
    (rank,) = problems(VIDEO, [*LTX_LORA, "--rank", "0"])
    assert rank.startswith('"--rank" must be >= 1') and "AssertionError" in rank


def test_required_finetrainers_flags_are_required() -> None:
    assert problems(VIDEO, ["--output_dir", "/out"]) == [
        f'"{name}" is required: set it in the config file or pass --{name}'
        for name in ("pretrained_model_name_or_path", "model_name", "training_type")
    ]  # --dataset_config is required by finetrainers too: the video preflight checks it (shared option)


def test_the_dump_carries_train_video(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dump", "--command", VIDEO]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped["commands"] == [VIDEO] and "sd_scripts_flags" in dumped
    assert [option["name"] for option in dumped["options"]] == list(options_for(VIDEO))
    assert dumped["finetrainers_flags"] == {VIDEO: sorted(finetrainers_flags())}
    hub_token = next(option for option in dumped["options"] if option["name"] == "hub_token")
    assert hub_token["secret"] is True


def test_the_hub_token_is_never_written(tmp_path: Path) -> None:
    values = {"model_name": "wan", "pretrained_model_name_or_path": "/m", "training_type": "lora",
              "output_dir": "/out", "hub_token": "hf_secret", "push_to_hub": True}  # fmt: skip
    run_toml = write_run_config(VIDEO, values, tmp_path / "run.toml").read_text(encoding="utf-8")
    assert "hf_secret" not in run_toml and "hub_token" not in run_toml and "push_to_hub = true" in run_toml
    snapshot = write_snapshot(VIDEO, values, tmp_path / "run.json").read_text(encoding="utf-8")
    assert "hf_secret" not in snapshot
    args = parse_args(VIDEO, [*LTX_LORA, "--hub_token", "hf_secret"])
    exported = write_config(args, VIDEO, tmp_path / "export.toml").read_text(encoding="utf-8")
    assert "hf_secret" not in exported and toml.loads(exported)["model"]["model_name"] == "ltx_video"


def test_the_declarations_follow_finetrainers_parser() -> None:
    declared = options_for(VIDEO)
    ours = {name for name in declared if name not in ("config_file", "output_config", "preflight")}
    assert ours - TAKEN_FROM_V0_0 <= finetrainers_flags()  # finetrainers' names only
    assert finetrainers_flags() - ours == NOT_DECLARED
    assert not set(REMOVED) & finetrainers_flags() and not set(REMOVED) & TAKEN_FROM_V0_0
    for name in sorted(ours - TAKEN_FROM_V0_0):
        option, flag = declared[name], finetrainers_flag(name)
        assert flag is not None
        kind = {"path": "str", "int_or_float": "int"}.get(option.kind, option.kind)
        assert kind == flag.kind, name
        default = list(option.default) if isinstance(option.default, tuple) else option.default
        expected = list(flag.default) if isinstance(flag.default, tuple) else flag.default
        if name in SHARED_DEFAULT_DIFFERENCES:
            assert expected == SHARED_DEFAULT_DIFFERENCES[name], name
        else:
            assert default == expected, name
        stricter = option.minimum is not None or option.maximum is not None or (
            option.choices is not None and not set(flag.choices or ()) <= set(option.choices)
        )
        if stricter and option.commands == VIDEO_COMMANDS:
            assert option.range_reason, f"{name} refuses values finetrainers' parser takes, without a reason"
        # Shared with the image commands: dataset_config is optional there, output_dir required.
        assert option.required == flag.required or name in ("dataset_config", "output_dir"), name


def test_shared_options_keep_the_image_default_where_finetrainers_differs() -> None:
    options = all_options()
    for name, finetrainers_default in SHARED_DEFAULT_DIFFERENCES.items():
        assert VIDEO in options[name].commands and len(options[name].commands) > 1
        assert options[name].default != finetrainers_default
