"""FLUX.1's commands in the option schema: sd-scripts' flag tables for the Flux and SD3 scripts, the
options scoped by declaration facts (objective, own_options), DDPM-only flags accepted and ignored
as sd-scripts does, and the dump the GUI reads."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backend import families
from backend.objectives import flow_matching
from backend.objectives.flow_matching import FlowMatchingConfig
from backend.options import parse_args
from backend.options.__main__ import main
from backend.options.defs import flow_matching as flow_defs
from backend.options.schema import (
    ALL_COMMANDS,
    DDPM_COMMANDS,
    FLOW_MATCHING_COMMANDS,
    accepted_options,
    all_options,
    commands_taking,
    options_for,
)
from backend.options.sd_scripts_flags import GROUPS, sd_scripts_commands_for, sd_scripts_flags
from backend.options.sd_scripts_types import flag_choices, flag_kind
from backend.options.value_warnings import value_warnings

from .helpers import problems

FLUX = ("flux_train_network", "flux_train")
SD3 = ("sd3_train_network", "sd3_train")
OTHERS = ("train_network", "sdxl_train_network", "fine_tune", "sdxl_train", "train_db", "train_textual_inversion",
          "sdxl_train_textual_inversion")
RUN = ["--pretrained_model_name_or_path", "/models/flux1-dev.safetensors", "--train_data_dir", "/data/train",
       "--output_dir", "/data/out"]  # fmt: skip
FLUX_OWN = ("clip_l", "t5xxl", "ae", "model_type", "t5xxl_max_token_length", "apply_t5_attn_mask", "guidance_scale")


# --- sd-scripts' flag tables ----------------------------------------------------------------------


def test_flag_counts_of_the_flux_and_sd3_scripts() -> None:
    """As setup_parser() of each script at 48d368fa declares them (argparse actions without --help)."""
    counts = {command: len(sd_scripts_flags(command)) for command in
              ("flux_train_network", "flux_train", "sd3_train_network", "sd3_train")}
    assert counts == {"flux_train_network": 215, "flux_train": 194, "sd3_train_network": 218, "sd3_train": 201}


def test_known_flags_of_each_new_script() -> None:
    network = sd_scripts_flags("flux_train_network")
    assert network - sd_scripts_flags("train_network") == set(GROUPS["dit_training"]) | set(GROUPS["flux"]) | {
        "split_mode"}
    assert {"clip_l", "t5xxl", "ae", "blocks_to_swap", "guidance_scale", "network_dim"} <= network
    finetune = sd_scripts_flags("flux_train")
    assert {"mem_eff_save", "double_blocks_to_swap", "cpu_offload_checkpointing", "reg_data_dir"} <= finetune
    assert not {"learning_rate_te", "train_text_encoder", "no_half_vae", "split_mode", "network_dim"} & finetune
    assert {"clip_g", "training_shift", "t5xxl_dtype"} <= sd_scripts_flags("sd3_train_network")
    assert {"learning_rate_te3", "train_t5xxl", "num_last_block_to_freeze"} <= sd_scripts_flags("sd3_train")
    assert sd_scripts_commands_for("clip_g") == ("sd3_train_network", "sd3_train")
    assert sd_scripts_commands_for("split_mode") == ("flux_train_network",)


def test_types_and_choices_of_new_flags() -> None:
    assert flag_kind("clip_l") == "str" and flag_kind("blocks_to_swap") == "int"
    assert flag_kind("apply_t5_attn_mask") == "bool" and flag_kind("discrete_flow_shift") == "float"
    assert flag_choices("model_type", "flux_train") == ("flux", "chroma")
    assert flag_choices("save_model_as", "flux_train_network") == ("ckpt", "pt", "safetensors")
    assert flag_choices("save_model_as", "flux_train") == ("ckpt", "safetensors", "diffusers", "diffusers_safetensors")


@pytest.mark.parametrize(
    ("command", "flag", "said"),
    [
        ("flux_train_network", "--split_mode", "is an sd-scripts option that this trainer does not implement"),
        ("flux_train", "--mem_eff_save", "is an sd-scripts option that this trainer does not implement"),
        ("flux_train", "--controlnet_model_name_or_path=/c", "is an sd-scripts option that this trainer does not"),
        ("flux_train_network", "--clip_g=/g", "is not accepted by flux_train_network; only sd3_train_network, sd3_train"),
        ("flux_train_network", "--training_shift=3", "is not accepted by flux_train_network; only sd3_train_network"),
        ("sd3_train_network", "--timestep_sampling=shift", "is not accepted by sd3_train_network; only flux_train_netw"),
        ("sd3_train_network", "--t5xxl_device=cpu", "is an sd-scripts option that this trainer does not"),
        ("train_network", "--t5xxl=/t5", "is not accepted by train_network; only flux_train_network, flux_train, sd3_"),
        ("sdxl_train_network", "--timestep_sampling=shift", "only flux_train_network, flux_train accept it"),
    ],
)
def test_flags_of_other_scripts_are_named_as_such(command: str, flag: str, said: str) -> None:
    [message] = problems(command, [*RUN, flag])
    assert said in message and flag.split("=")[0] in message


# --- scoping by the declarations ------------------------------------------------------------------


def test_flux_options_belong_to_the_flux_commands_only() -> None:
    flow = {"timestep_sampling", "sigmoid_scale", "discrete_flow_shift", "model_prediction_type",
            "weighting_scheme", "logit_mean", "logit_std", "mode_scale"}  # fmt: skip
    for command in FLUX:
        assert {*FLUX_OWN, *flow} <= set(options_for(command))
    for command in OTHERS:
        assert not {*FLUX_OWN, *flow} & set(accepted_options(command))
    assert FLOW_MATCHING_COMMANDS == FLUX + SD3 and set(DDPM_COMMANDS) == set(OTHERS)
    shared = {"clip_l", "t5xxl", "t5xxl_max_token_length", "apply_t5_attn_mask"}  # sd-scripts' sd3 flags too
    assert all(commands_taking(name) == (FLUX + SD3 if name in shared else FLUX) for name in FLUX_OWN)
    for command in SD3:  # sd3_train_network samples as SD3 does: no Flux timestep flags
        assert not {"timestep_sampling", "sigmoid_scale", "discrete_flow_shift", "model_prediction_type"} & set(
            accepted_options(command))
        assert {"weighting_scheme", "logit_mean", "logit_std", "mode_scale", "training_shift", "clip_g"} <= set(
            options_for(command))


def test_own_options_come_from_the_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A family naming an option among its own gets it on its commands; nothing else names families."""
    other = replace(families.declaration("flux_dev"), name="toy", commands={"lora": "train_network"},
                    own_options=("guidance_scale",))  # fmt: skip
    monkeypatch.setattr(families, "DECLARATIONS", (*families.DECLARATIONS, other))
    assert commands_taking("guidance_scale") == ("flux_train_network", "flux_train", "train_network")
    assert commands_taking("clip_l") == FLUX + SD3


def test_every_flow_matching_field_is_an_option_of_the_flux_commands() -> None:
    """backend/objectives/flow_matching.py reads these by name from the namespace."""
    args = parse_args("flux_train_network", RUN)
    assert FlowMatchingConfig.from_args(args) == FlowMatchingConfig()
    for name in FlowMatchingConfig.__dataclass_fields__:
        assert name in options_for("flux_train") and name in sd_scripts_flags("flux_train"), name
    assert flow_defs.TIMESTEP_SAMPLINGS == flow_matching.TIMESTEP_SAMPLINGS
    assert flow_defs.MODEL_PREDICTION_TYPES == flow_matching.MODEL_PREDICTION_TYPES
    assert flow_defs.WEIGHTING_SCHEMES == flow_matching.WEIGHTING_SCHEMES


def test_defaults_are_sd_scripts() -> None:
    args = parse_args("flux_train", RUN)
    assert (args.timestep_sampling, args.sigmoid_scale, args.discrete_flow_shift) == ("sigma", 1.0, 3.0)
    assert (args.model_prediction_type, args.guidance_scale, args.weighting_scheme) == ("sigma_scaled", 3.5, "uniform")
    assert (args.logit_mean, args.logit_std, args.mode_scale) == (0.0, 1.0, 1.29)
    assert (args.clip_l, args.t5xxl, args.ae, args.model_type) == (None, None, None, "flux")
    assert args.t5xxl_max_token_length is None and args.apply_t5_attn_mask is False
    assert args.ip_noise_gamma is None  # flow matching perturbs the input too (sd-scripts' Flux scripts)
    # Options of other commands still read as their defaults in shared code.
    assert args.v_parameterization is False and args.min_snr_gamma is None


def test_flux_values_and_choices() -> None:
    args = parse_args("flux_train_network", [
        *RUN, "--clip_l", "/m/clip_l.safetensors", "--t5xxl", "/m/t5xxl_fp16.safetensors", "--ae", "/m/ae.sft",
        "--timestep_sampling", "flux_shift", "--model_prediction_type", "raw", "--guidance_scale", "1.0",
        "--t5xxl_max_token_length", "256", "--apply_t5_attn_mask", "--discrete_flow_shift", "3.1582",
    ])  # fmt: skip
    assert (args.clip_l, args.t5xxl, args.ae) == ("/m/clip_l.safetensors", "/m/t5xxl_fp16.safetensors", "/m/ae.sft")
    assert (args.timestep_sampling, args.model_prediction_type, args.guidance_scale) == ("flux_shift", "raw", 1.0)
    assert args.t5xxl_max_token_length == 256 and args.apply_t5_attn_mask and args.discrete_flow_shift == 3.1582
    [bad] = problems("flux_train_network", [*RUN, "--timestep_sampling", "logit"])
    assert "sigma, uniform, sigmoid, shift, flux_shift" in bad
    [bad] = problems("flux_train", [*RUN, "--weighting_scheme", "logit-normal"])
    assert 'did you mean "logit_normal"' in bad
    [negative] = problems("flux_train", [*RUN, "--logit_std=-1"])
    assert "--logit_std" in negative and ">= 0" in negative


def test_model_type_takes_sd_scripts_values() -> None:
    assert parse_args("flux_train_network", [*RUN, "--model_type", "chroma"]).model_type == "chroma"
    [message] = problems("flux_train_network", [*RUN, "--model_type", "chroma2"])
    assert "--model_type" in message and "flux, chroma" in message


def test_v_parameterization_is_refused_on_flow_matching() -> None:
    """sd-scripts' Flux scripts parse it and ignore it; here it would suggest v-prediction training."""
    [message] = problems("flux_train_network", [*RUN, "--v_parameterization"])
    assert message.startswith('"--v_parameterization" is not accepted by flux_train_network; only train_network')
    assert "v_parameterization" in options_for("sdxl_train") and "v2" not in accepted_options("flux_train")


# --- DDPM-only flags: accepted as sd-scripts does, with a warning, and not shown ------------------


def test_ddpm_flags_are_accepted_and_said_to_have_no_effect() -> None:
    argv = [*RUN, "--noise_offset", "0.05", "--min_snr_gamma", "5", "--max_token_length", "225",
            "--zero_terminal_snr"]  # fmt: skip
    args = parse_args("flux_train_network", argv)
    assert (args.noise_offset, args.min_snr_gamma, args.max_token_length) == (0.05, 5.0, 225)
    warnings = value_warnings(args, "flux_train_network")
    said = {name for name in ("noise_offset", "min_snr_gamma", "max_token_length", "zero_terminal_snr")
            if any(w.startswith(f"--{name} has no effect on flux_train_network") for w in warnings)}
    assert said == {"noise_offset", "min_snr_gamma", "max_token_length", "zero_terminal_snr"}
    assert any("--t5xxl_max_token_length" in w for w in warnings)
    assert value_warnings(parse_args("flux_train_network", RUN), "flux_train_network") == []
    # Not a field of the flux commands' GUI forms, and not ignored where they work.
    assert not {"noise_offset", "min_snr_gamma", "max_token_length"} & set(options_for("flux_train"))
    assert value_warnings(parse_args("train_network", [*RUN, "--noise_offset", "0.05"]), "train_network") == []


@pytest.mark.parametrize("name", sorted(n for n, o in all_options().items() if o.ignored_on))
def test_only_what_sd_scripts_accepts_is_ignored(name: str) -> None:
    """An ignored option is one sd-scripts' script parses there; others are refused, not ignored."""
    option = all_options()[name]
    for command in option.ignored_on:
        assert name in sd_scripts_flags(command), f"sd-scripts' {command} has no --{name}: refuse it instead"
    assert option.ignored_reason.strip()


def test_sd_scripts_flux_config_file_parses(write) -> None:
    """A config written for sd-scripts' flux_train_network (keys as its docs use them) runs here."""
    path = write("flux.toml", """
pretrained_model_name_or_path = "/models/flux1-dev.safetensors"
clip_l = "/models/clip_l.safetensors"
t5xxl = "/models/t5xxl_fp16.safetensors"
ae = "/models/ae.safetensors"
train_data_dir = "/data/train"
output_dir = "/data/out"
network_module = "networks.lora"
network_dim = 4
network_train_unet_only = true
cache_text_encoder_outputs = true
cache_text_encoder_outputs_to_disk = true
mixed_precision = "bf16"
save_precision = "bf16"
timestep_sampling = "shift"
discrete_flow_shift = 3.1582
model_prediction_type = "raw"
guidance_scale = 1.0
loss_type = "l2"
max_token_length = 225
""")
    args = parse_args("flux_train_network", ["--config_file", str(path)])
    assert (args.clip_l, args.timestep_sampling, args.discrete_flow_shift) == ("/models/clip_l.safetensors", "shift",
                                                                              3.1582)  # fmt: skip
    assert args.cache_text_encoder_outputs_to_disk and args.network_train_unet_only
    assert [w.split(":")[0] for w in value_warnings(args, "flux_train_network")] == [
        "--max_token_length has no effect on flux_train_network"]


def test_dump_lists_the_flux_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dump", "--command", "flux_train_network"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    names = [option["name"] for option in dumped["options"]]
    assert {*FLUX_OWN, "timestep_sampling", "weighting_scheme", "network_dim"} <= set(names)
    assert "noise_offset" not in names and "v_parameterization" not in names
    assert len(dumped["sd_scripts_flags"]["flux_train_network"]) == 215
    assert {m["name"]: m["objective"] for m in dumped["model_types"]}["flux_schnell"] == "flow_matching"
    assert main(["--dump"]) == 0
    every = {option["name"]: option for option in json.loads(capsys.readouterr().out)["options"]}
    assert every["noise_offset"]["ignored_on"] == list(FLUX + SD3) and every["noise_offset"]["ignored_reason"]
    assert every["clip_l"]["commands"] == list(FLUX + SD3) and every["clip_l"]["kind"] == "path"
    assert set(ALL_COMMANDS) >= set(FLUX)
