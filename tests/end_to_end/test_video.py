"""Issue 18's "Done when" for the video families on their tiny models, from finetrainers-style flags:

- a LoRA of each family (v0.0.x's data flags or v0.2's `--dataset_config` JSON), run
  uninterrupted, then again SIGKILLed as soon as its first checkpoint is written (LTX-Video, Wan; the others
  from the full run's newest checkpoint) and resumed with `--resume_from_checkpoint latest`: the same losses from the next step on and the same file, tensor for
  tensor (the killed runs' precomputed latents and conditions read from disk by the resumed one);
  checkpoints pruned to `--checkpointing_limit`, every LoRA save kept; a validation video (mp4);
  the family's diffusers pipeline loads the LoRA with `load_lora_weights` and renders differently;
- a full fine-tune of each family: the transformer folder the family's diffusers model class loads.

The loss falls on the one clip in every run (the seed fixes the draws: the mean of the last half of the
steps is below the first half's).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
import torch
from safetensors.torch import load_file

from tests.data.video.make_clips import write_clip

from .helpers import TrainerResult, run_trainer, run_until_state_then_kill

STEPS, EVERY = 8, 2


@dataclass(frozen=True)
class Case:
    name: str
    arch: str
    model_name: str
    frames: int  # 1 + k x the VAE's temporal compression
    lora: bool
    json_config: bool  # v0.2's --dataset_config instead of v0.0.x's data flags
    # LoRAs: SIGKILLed at the first checkpoint, then resumed; else resumed from the full run's newest checkpoint
    # (the same state and loop: two families show the kill, the others their own draws resuming exactly).
    kill: bool = True
    # A LoRA's --lr: the tiny HunyuanVideo's attention LoRA (behind random AdaLN gates and a layer-normed output)
    # needs 3e-2 for its loss to fall visibly in 8 steps.
    lora_lr: str = "1e-2"


CASES = [
    Case("ltx-lora", "ltx-video", "ltx_video", 9, lora=True, json_config=False),
    Case("wan-lora", "wan2.1-t2v-1.3b", "wan", 5, lora=True, json_config=True),
    Case("ltx-full", "ltx-video", "ltx_video", 9, lora=False, json_config=False),
    Case("wan-full", "wan2.1-t2v-1.3b", "wan", 5, lora=False, json_config=True),
    Case("hunyuan-lora", "hunyuan-video", "hunyuan_video", 5, lora=True, json_config=True, lora_lr="3e-2", kill=False),
    Case("hunyuan-full", "hunyuan-video", "hunyuan_video", 5, lora=False, json_config=False),
    # CogVideoX decodes an odd number of latent frames back into as many frames: 1 + 8k.
    Case("cogvideox-lora", "cogvideox-5b", "cogvideox", 9, lora=True, json_config=True, kill=False),
    Case("cogvideox-full", "cogvideox-5b", "cogvideox", 9, lora=False, json_config=False),
]


def flags(case: Case, model: Path, data: Path, out: Path) -> list[str]:
    bucket = f"{case.frames}x64x64"
    if case.json_config:
        config = data.parent / "training.json"
        config.write_text(json.dumps({"datasets": [{"data_root": str(data), "dataset_type": "video",
                                                    "video_resolution_buckets": [[case.frames, 64, 64]]}]}))
        source = ["--dataset_config", str(config)]
    else:
        source = ["--data_root", str(data), "--video_resolution_buckets", bucket]
    method = (["--training_type", "lora", "--rank", "4", "--lora_alpha", "8", "--lr", case.lora_lr] if case.lora
              else ["--training_type", "full-finetune", "--lr", "2e-3"])
    return [
        "--model_name", case.model_name, "--pretrained_model_name_or_path", str(model), *source, *method,
        "--train_steps", str(STEPS), "--checkpointing_steps", str(EVERY), "--checkpointing_limit", "1",
        "--seed", "7", "--transformer_dtype", "fp32", "--output_dir", str(out), "--enable_precomputation",
        *validation(case, data.parent),
    ]


def validation(case: Case, root: Path) -> list[str]:
    """The LoRAs' validation video at the last step: v0.0.x's prompt flag (finetrainers' 50 steps) for LTX-Video,
    v0.2's table (2 steps) for the others; the fine-tunes have none (the same code renders them)."""
    if not case.lora:
        return []
    if not case.json_config:
        return ["--validation_prompts", f"a red square@@@{case.frames}x64x64", "--validation_steps", str(STEPS)]
    table = root / "validation.json"
    table.write_text(json.dumps({"data": [{"caption": "a red square", "num_frames": case.frames, "height": 64,
                                           "width": 64, "num_inference_steps": 2}]}))
    return ["--validation_dataset_file", str(table), "--validation_steps", str(STEPS)]


@dataclass
class Runs:
    case: Case
    model: Path
    full: TrainerResult
    full_out: Path
    killed: list[dict] | None = None
    resumed: TrainerResult | None = None
    resumed_out: Path | None = None


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def runs(request, tiny, tmp_path_factory) -> Runs:
    case: Case = request.param
    root = tmp_path_factory.mktemp(case.name)
    write_clip(root / "data" / "clip.mp4", frames=17, size=(64, 64), fps=8, seed=3)
    (root / "data" / "clip.txt").write_text("a red square moves right", encoding="utf-8")
    model = tiny.get(case.arch).path
    full = run_trainer("train_video", *flags(case, model, root / "data", root / "full"))
    assert full.returncode == 0, full.stderr[-3000:]
    result = Runs(case, model, full, root / "full")
    if case.lora:
        argv = flags(case, model, root / "data", root / "killed")
        if case.kill:
            result.killed = run_until_state_then_kill("train_video", argv)
        else:  # the uninterrupted run's newest checkpoint, as a killed run leaves it
            shutil.copytree(root / "full" / f"finetrainers_step_{STEPS - EVERY}",
                            root / "killed" / f"finetrainers_step_{STEPS - EVERY}")
        result.resumed = run_trainer("train_video", *argv, "--resume_from_checkpoint", "latest")
        assert result.resumed.returncode == 0, result.resumed.stderr[-3000:]
        result.resumed_out = root / "killed"
    return result


def test_the_loss_on_the_one_clip_falls(runs: Runs) -> None:
    losses = [runs.full.losses()[step] for step in range(1, STEPS + 1)]
    half = STEPS // 2
    assert sum(losses[half:]) / half < 0.97 * sum(losses[:half]) / half, losses


def test_checkpoints_are_pruned_and_every_save_kept(runs: Runs) -> None:
    out = runs.full_out
    assert sorted(p.name for p in out.glob("finetrainers_step_*")) == [f"finetrainers_step_{STEPS - EVERY}"]
    saves = out / ("lora_weights" if runs.case.lora else "model_weights")
    assert sorted(p.name for p in saves.iterdir()) == [f"{s:06d}" for s in range(EVERY, STEPS, EVERY)]
    final = out / ("pytorch_lora_weights.safetensors" if runs.case.lora else "transformer")
    assert runs.full.of("end")[0]["output"] == str(final) and final.exists()


def test_a_validation_video_is_written(runs: Runs) -> None:
    if not runs.case.lora:
        assert not runs.full.of("sample")
        return
    [sample] = runs.full.of("sample")
    assert sample["step"] == STEPS and sample["path"].endswith(".mp4")
    with av.open(sample["path"]) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (64, 64)
        assert sum(1 for _ in container.decode(stream)) == runs.case.frames


def test_resume_after_kill_is_exact(runs: Runs) -> None:
    if not runs.case.lora:
        pytest.skip("shown on the LoRAs: the same state and loop")
    assert runs.resumed is not None and runs.resumed_out is not None
    resumed_at = EVERY if runs.case.kill else STEPS - EVERY
    if runs.case.kill:
        assert runs.killed is not None
        killed_steps = [e["step"] for e in runs.killed if e["event"] == "step"]
        assert killed_steps[:EVERY] == list(range(1, EVERY + 1))
    assert runs.resumed.of("start")[0]["initial_step"] == resumed_at
    if runs.case.kill:  # the resumed run reads what the killed one precomputed (--enable_precomputation) and
        # trains exactly what the run that encoded it trained (the losses below)
        assert "latents: 0 clips encoded, 1 read" in runs.resumed.stderr
        assert "text encoder outputs: 0 captions encoded, 1 read" in runs.resumed.stderr
    assert [e["step"] for e in runs.resumed.of("step")] == list(range(resumed_at + 1, STEPS + 1))
    full_losses = runs.full.losses()
    assert runs.resumed.losses() == {s: full_losses[s] for s in runs.resumed.losses()}
    expected = load_file(runs.full_out / "pytorch_lora_weights.safetensors")
    actual = load_file(runs.resumed_out / "pytorch_lora_weights.safetensors")
    assert expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)


def test_the_files_load_in_diffusers(runs: Runs) -> None:
    from diffusers import DiffusionPipeline

    if not runs.case.lora:
        pipeline = DiffusionPipeline.from_pretrained(runs.model)
        trained = type(pipeline.transformer).from_pretrained(runs.full_out / "transformer")
        assert trained.state_dict().keys() == pipeline.transformer.state_dict().keys()
        changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, pipeline.transformer.state_dict()[k])]
        assert changed
        return
    keys = load_file(runs.full_out / "pytorch_lora_weights.safetensors")
    assert all(k.startswith("transformer.") and (k.endswith(".lora_A.weight") or k.endswith(".lora_B.weight"))
               for k in keys)

    def render(pipeline) -> torch.Tensor:
        result = pipeline("a red square", num_frames=runs.case.frames, height=64, width=64, num_inference_steps=2,
                          generator=torch.Generator().manual_seed(0), output_type="pt")
        return result.frames[0]

    pipeline = DiffusionPipeline.from_pretrained(runs.model)
    pipeline.set_progress_bar_config(disable=True)
    before = render(pipeline)
    pipeline.load_lora_weights(runs.full_out)
    assert not torch.allclose(render(pipeline), before)
