"""Every family (SD 1.5, SD 2 v-prediction, SDXL) with every training method (LoRA, LyCORIS, full
fine-tune) on the device, in bf16 and fp16. fp16 runs through accelerate's GradScaler on CUDA (the
CPU refuses fp16): its state is saved with the training state, the loss stays finite, the optimizer
really steps (a scaler that skipped every step would leave the weights as they were) and every file
is finite. Each run also samples an image at its last step (autocast in the pipeline, the modules
moved back after)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.cuda.support import assert_finite, differs, finite_losses, image_varies, train_here, write_prompts
from tests.end_to_end.finetune_helpers import assert_trained, ft_flags, prepare_metadata, weights
from tests.end_to_end.helpers import base_flags

STEPS = 3
PRECISIONS = [
    pytest.param("bf16", id="bf16"),
    pytest.param("fp16", id="fp16", marks=pytest.mark.cuda_only),  # the CPU has no fp16 autocast/scaler
]
ARCHS = ["sd15", "sd2-v", "sdxl"]
NETWORK_COMMANDS = {"sd15": "train_network", "sd2-v": "train_network", "sdxl": "sdxl_train_network"}
FINETUNE_COMMANDS = {"sd15": "fine_tune", "sd2-v": "fine_tune", "sdxl": "sdxl_train"}
# One LyCORIS algorithm per family, so each runs on the device: LoCon (with conv layers), LoHa, LoKr.
LYCORIS_ARGS = {
    "sd15": ["algo=locon", "conv_dim=4", "conv_alpha=1"],
    "sd2-v": ["algo=loha"],
    "sdxl": ["algo=lokr", "factor=4", "preset=attn-mlp"],
}


def common_flags(prompts: Path, precision: str) -> list[str]:
    return ["--max_train_steps", str(STEPS), "--learning_rate", "1e-3", "--mixed_precision", precision,
            "--save_every_n_steps", "1", "--save_state_on_train_end",
            "--sample_prompts", str(prompts), "--sample_every_n_steps", str(STEPS)]


def check_run_basics(result, out: Path, precision: str, suffix: str = ".safetensors") -> None:
    assert [e["step"] for e in result.of("step")] == [1, 2, 3]
    finite_losses(result)
    [sample] = result.of("sample")
    assert sample["step"] == STEPS and image_varies(Path(sample["path"])), "the sample is one flat colour"
    state = out / "tiny-state"
    assert (state / "train_state.json").is_file()
    # accelerate keeps the GradScaler's state beside the optimizer's only when it scaled the loss.
    assert (state / "scaler.pt").is_file() == (precision == "fp16")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", ["lora", pytest.param("lycoris", marks=pytest.mark.slow)])
@pytest.mark.parametrize("arch", ARCHS)
def test_network_training(tiny, train_dir, tmp_path, device, arch, method, precision) -> None:
    if method == "lycoris":
        pytest.importorskip("lycoris", reason="lycoris-lora is not installed")
        network = ["--network_module", "lycoris.kohya", "--network_dim", "4", "--network_alpha", "2",
                   "--network_args", *LYCORIS_ARGS[arch]]
    else:
        network = ["--network_dim", "4", "--network_alpha", "2"]
    model = tiny.get(arch)
    out = tmp_path / "out"
    flags = base_flags(model.path, train_dir, out, *model.trainer_flags()[2:], *network,
                       *common_flags(write_prompts(tmp_path), precision))
    result = train_here(NETWORK_COMMANDS[arch], flags, device).ok().result

    check_run_basics(result, out, precision)
    saves = [out / f"tiny-step0000000{step}.safetensors" for step in (1, 2)] + [out / "tiny.safetensors"]
    for path in saves:
        assert_finite(path)
    assert differs(saves[0], saves[-1]), "the weights did not change after step 1: every step was skipped"


@pytest.fixture(scope="module")
def metadata(tiny, tmp_path_factory) -> Callable[[str], tuple[Path, Path]]:
    """(image folder, metadata file) of a family, made on first use (latents by prepare_buckets_latents,
    which encodes on the GPU when there is one)."""
    made: dict[str, tuple[Path, Path]] = {}

    def of(arch: str) -> tuple[Path, Path]:
        if arch not in made:
            made[arch] = prepare_metadata(tmp_path_factory.mktemp(f"ft-{arch}"), tiny.get(arch).path,
                                          ["--v2"] if arch.startswith("sd2") else [])
        return made[arch]

    return of


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("arch", ARCHS)
def test_fine_tuning(tiny, tmp_path, device, metadata, arch, precision) -> None:
    model = tiny.get(arch)
    folder, meta = metadata(arch)
    out = tmp_path / "out"
    flags = ft_flags(model.path, folder, meta, out, *model.trainer_flags()[2:], "--train_text_encoder",
                     *common_flags(write_prompts(tmp_path), precision))
    result = train_here(FINETUNE_COMMANDS[arch], flags, device).ok().result

    check_run_basics(result, out, precision)
    saved = weights(out / "tiny.safetensors", tiny.get(arch, single_file=True).tokenizer_cache_dir)
    for part, state in saved.items():
        bad = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
        assert not bad, f"{part}: non-finite {bad[:3]}"
    # The U-Net and text encoder(s) trained (float32 master weights under the scaler), the VAE is the base's.
    trained = {"unet", "text_encoder1"} | ({"text_encoder2"} if arch == "sdxl" else set())
    assert_trained(saved, weights(model.path), trained)
