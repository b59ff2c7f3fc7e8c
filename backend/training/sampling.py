"""Sample images during training (sd-scripts' `--sample_prompts`), without disturbing the training.

`generate_samples` builds one diffusers pipeline on the training modules (a LoRA network patches
their forward methods, so samples show it), renders each prompt with its own sampler, size, steps,
CFG scale and seed, and writes `<output_dir>/sample/<name>_<e000001|000500>_<NN>_<timestamp>[_seed].png`
as sd-scripts names them, with A1111-style "parameters" PNG text so the settings travel with the image.

Prompts are encoded by the model specification, as for training, so clip skip and long prompts
(`max_token_length` chunks) condition samples the way they condition training; the pipeline gets
the embeddings. An absent negative prompt is the empty string (sd-scripts; diffusers' SDXL default
would use zeros). Noise comes from a CPU generator, so a seed starts from the same noise on any device.

Sampling leaves no trace on training: every module's train/eval mode and device, and the global
torch, Python and NumPy random states, are as before. A prompt that fails is logged as a warning
and skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from backend.atomic import atomic_path
from backend.messages import msg
from backend.training.sample_prompts import SamplePrompt, sample_image_filename

if TYPE_CHECKING:

    from backend.models.components import Components
    from backend.models.spec import ModelSpecification
    from backend.training.progress import ProgressReporter

logger = logging.getLogger(__name__)

SAMPLE_FOLDER = "sample"


def generate_samples(
    spec: ModelSpecification,
    components: Components,
    prompts: Sequence[SamplePrompt],
    *,
    sampler: str,
    output_dir: str | os.PathLike[str],
    output_name: str | None,
    step: int,
    epoch: int | None,
    device: torch.device,
    dtype: torch.dtype,
    reporter: ProgressReporter | None = None,
    default_seed: int | None = None,
    clip_skip: int | None = None,
    max_token_length: int | None = None,
    extra_modules: Sequence[torch.nn.Module] = (),
) -> list[Path]:
    """Render `prompts` and return the paths written (failed prompts are logged and left out).

    `sampler` is `--sample_sampler`, used where a prompt has no `--ss`. `epoch` is set only for
    end-of-epoch samples (it names the files `e000001`). A prompt without `--d` uses
    `default_seed + prompt.index` (the same seed at every sampling, so images are comparable over
    training), or a random seed when `default_seed` is None; the seed is in the PNG metadata.
    `dtype` is the mixed precision: autocast on accelerators; on CPU only bfloat16 is used, else
    float32. `extra_modules` are other modules taking part in the forward (a LoRA network, whose
    dropout must be off while sampling). Pass unwrapped modules. With several processes, give each
    a share of the prompts (their `index` keeps the names apart).
    """
    if not prompts:
        return []
    device = _resolve(torch.device(device))
    sample_dir = Path(output_dir) / SAMPLE_FOLDER
    modules = [components.unet, components.vae, *components.text_encoders, *extra_modules]
    written: list[Path] = []
    with _preserved_rng(device), _sampling_modules(modules, device), torch.no_grad():
        pipeline = spec.pipeline(components)
        # One log line per image instead of progress bars in the training log.
        pipeline.set_progress_bar_config(disable=True)
        for prompt in prompts:
            sampler_name = prompt.sample_sampler or sampler
            seed = _seed(prompt, default_seed)
            try:
                with _autocast(device, dtype):
                    image = spec.render_sample(
                        pipeline, components, prompt, sampler_name, seed,
                        clip_skip=clip_skip, max_token_length=max_token_length,
                    )
                path = sample_dir / sample_image_filename(
                    output_name, prompt.index, epoch=epoch, step=step, seed=prompt.seed
                )
                parameters = format_parameters(
                    prompt,
                    sampler_name,
                    seed,
                    output_name=output_name,
                    step=step,
                    epoch=epoch,
                    clip_skip=clip_skip,
                )
                if isinstance(image, list):  # a video family's frames: its validation video
                    path = path.with_suffix(".mp4")
                    from backend.training.video_file import write_mp4

                    write_mp4(image, path, fps=int(prompt.extra.get("fps", 8)), comment=parameters)
                else:
                    _save_png(image, path, parameters)
            except Exception:  # a sample is never worth the training run
                logger.warning(
                    msg("run.sample_failed", "sample image {index} ({prompt}, sampler {sampler}) failed and was "
                        "skipped", index=prompt.index, prompt=repr(prompt.prompt), sampler=sampler_name),
                    exc_info=True,
                )
                continue
            logger.info(msg("run.sample_written", "sample image {index}: {path}", index=prompt.index, path=path))
            written.append(path)
            if reporter is not None:
                reporter.sample(path=str(path), step=step, epoch=epoch, prompt_index=prompt.index)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # give the pipeline's activations back to training
    return written


def _save_png(image: Image.Image, path: Path, parameters: str) -> None:
    info = PngInfo()
    info.add_text("parameters", parameters)  # iTXt (UTF-8) when the prompt is not Latin-1
    with atomic_path(path) as temp:
        image.save(temp, format="PNG", pnginfo=info)


def _seed(prompt: SamplePrompt, default_seed: int | None) -> int:
    if prompt.seed is not None:
        return prompt.seed
    if default_seed is not None:
        return default_seed + prompt.index
    return secrets.randbelow(2**32)  # random, yet recorded in the image, and no draw from training's RNGs


def _quote(value: object) -> str:
    # A1111's rule: values holding its separators are written as JSON strings.
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ',:\n"') else text


def format_parameters(
    prompt: SamplePrompt,
    sampler: str,
    seed: int,
    *,
    output_name: str | None,
    step: int | None,
    epoch: int | None,
    clip_skip: int | None = None,
    extra: dict[str, object] | None = None,
) -> str:
    """The "parameters" PNG text in A1111's layout (prompt, `Negative prompt:` line, `Key: value` list).
    `step` None: not a training sample (the generator); `extra`: more fields, after the others."""
    width, height = prompt.size
    fields: dict[str, object] = {
        "Steps": prompt.sample_steps,
        "Sampler": sampler,
        "CFG scale": prompt.scale,
        "Seed": seed,
        "Size": f"{width}x{height}",
    }
    if clip_skip and clip_skip > 1:
        fields["Clip skip"] = clip_skip
    if output_name:
        fields["Training output"] = output_name
    if step is not None:
        fields["Training step"] = step
    if epoch is not None:
        fields["Training epoch"] = epoch
    fields.update(extra or {})
    lines = [prompt.prompt]
    if prompt.negative_prompt:
        lines.append(f"Negative prompt: {prompt.negative_prompt}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items()))
    return "\n".join(lines)


def _resolve(device: torch.device) -> torch.device:
    # "cuda" and "cuda:0" are the same device; parameters report the indexed form.
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    if dtype == torch.bfloat16 or (dtype == torch.float16 and device.type != "cpu"):
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _preserved_rng(device: torch.device) -> Iterator[None]:
    """Torch (CPU and `device`), Python and NumPy random states as they were, however sampling ends."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    accelerators = [] if device.type == "cpu" else [device]
    try:
        with torch.random.fork_rng(devices=accelerators, device_type=device.type):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _device_of(module: torch.nn.Module) -> torch.device | None:
    param = next(module.parameters(), None)
    return None if param is None else param.device


@contextlib.contextmanager
def _sampling_modules(modules: Sequence[torch.nn.Module], device: torch.device) -> Iterator[None]:
    """`modules` in eval mode on `device`; afterwards each back on its device, each submodule in its own mode.

    Modes are saved per submodule because `train(mode)` would flatten mixed modes (a frozen part
    kept in eval inside a training model).
    """
    unique = list({id(m): m for m in modules}.values())
    modes = {sub: sub.training for module in unique for sub in module.modules()}
    devices = [(module, _device_of(module)) for module in unique]
    try:
        for module, current in devices:
            module.eval()
            if current is not None and current != device:
                module.to(device)  # e.g. a VAE parked on the CPU while latents are cached
        yield
    finally:
        for module, current in devices:
            if current is not None and current != device:
                module.to(current)
        for sub, mode in modes.items():
            sub.training = mode
