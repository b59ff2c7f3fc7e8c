"""The work behind `python -m backend.tools.generate` once its arguments are checked (generate.py): the model
loaded once through its family's spec, networks merged into its weights per image and taken off again, the
images rendered as the trainer renders its samples (`spec.render_sample`), written atomically, and the grid."""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import torch
from PIL import Image

from backend.atomic import atomic_path
from backend.families import declaration, model_file_options
from backend.families.loaded import get_spec
from backend.messages import msg
from backend.models.components import Components
from backend.tools.cli.light_cli import InputError, ItemProgress
from backend.tools.generation.grid import draw_grid
from backend.tools.generation.plan import Job, Plan, image_name
from backend.tools.lora.lora_files import LoraFile, check_finite_lora, load_lora
from backend.tools.lora.lora_layers import layer_refs
from backend.tools.lora.merge_into_model import check_family, detect_checkpoint, merge_into
from backend.tools.lora.tool_cli import check_device, dtype_of
from backend.training.embedding_files import EmbeddingFileError, read_embedding
from backend.training.sample_prompts import SamplePrompt
from backend.training.sampling import _autocast, _resolve, _save_png, format_parameters

logger = logging.getLogger(__name__)


class AppliedNetworks:
    """Networks merged into the loaded model's weights; `use` puts the weights a job asks for in place (the
    layers a network changed are restored from copies first), so the model is never loaded twice."""

    def __init__(self, components: Components, files: dict[str, LoraFile], device: torch.device) -> None:
        self.components, self.files, self.device = components, files, device
        self.layers = layer_refs(components.unet, components.text_encoders)
        self.saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(weight) -> (weight, copy)
        self.current: tuple[tuple[str, float], ...] = ()

    def _save(self, lora: LoraFile) -> None:
        for name in lora.modules:
            layer = self.layers.get(name)
            for part in layer.parts if layer is not None else ():
                weight = part.weight
                if id(weight) not in self.saved:
                    self.saved[id(weight)] = (weight, weight.detach().to("cpu", copy=True))

    @torch.no_grad()
    def use(self, networks: tuple[tuple[str, float], ...]) -> None:
        active = tuple((path, weight) for path, weight in networks if weight != 0)
        if active == self.current:
            return
        for weight, copy in self.saved.values():
            weight.copy_(copy.to(weight.device))
        for path, weight in active:
            lora = self.files[path]
            self._save(lora)
            merge_into(self.components, lora, weight, str(self.device))
        self.current = active


def _words(stem: str, count: int) -> list[str]:
    return [stem, *(f"{stem}{index}" for index in range(1, count))]


def add_embeddings(components: Components, paths: list[str]) -> dict[str, list[str]]:
    """Each embedding's vectors as new words of every tokenizer (the file's name, then name1, ... for more
    vectors, as sd-scripts' Textual Inversion names them); returns {name: its words}."""
    keys = declaration(components.family).embedding_keys
    expanded: dict[str, list[str]] = {}
    for path in paths:
        stem = Path(path).stem
        try:
            vectors = read_embedding(path, keys)
        except EmbeddingFileError as error:
            raise InputError(str(error).replace("--weights", "--embedding")) from None
        words = _words(stem, int(vectors[0].shape[0]))
        for index, (tokenizer, encoder, tensor) in enumerate(
                zip(components.tokenizers, components.text_encoders, vectors, strict=False)):
            table = encoder.get_input_embeddings()
            if tensor.dim() != 2 or tensor.shape[1] != table.weight.shape[1]:
                raise InputError(msg(
                    "tool.generate_embedding_width", "--embedding {path}: its vectors have width {width}, text encoder "
                    "{index} of the model {expected}; use an embedding made for this model type", path=path,
                    width=tuple(tensor.shape), index=index + 1, expected=table.weight.shape[1]))
            if any(word in tokenizer.get_vocab() for word in words) or tokenizer.add_tokens(words) != len(words):
                raise InputError(msg("tool.generate_embedding_word", "--embedding {path}: the tokenizer already knows "
                                     "the word {word}; rename the file to a made-up word", path=path, word=stem))
            encoder.resize_token_embeddings(len(tokenizer))
            ids = tokenizer.convert_tokens_to_ids(words)
            with torch.no_grad():
                weight = encoder.get_input_embeddings().weight
                weight[ids] = tensor.to(weight.device, weight.dtype)
        expanded[stem] = words
        logger.info(msg("tool.generate_embedding_added", "embedding {path}: '{word}' ({count} vectors)",
                        path=path, word=stem, count=len(words)))
    return expanded


def expand_words(text: str | None, expanded: dict[str, list[str]]) -> str | None:
    if not text:
        return text
    for stem, words in expanded.items():
        if len(words) > 1:
            text = re.sub(rf"(?<!\w){re.escape(stem)}(?!\w)", " ".join(words), text)
    return text


def _load(args: argparse.Namespace, plan: Plan, device: torch.device, dtype: torch.dtype
          ) -> tuple[object, Components, dict[str, LoraFile]]:
    model = args.pretrained_model_name_or_path
    info = detect_checkpoint(model)
    spec = get_spec(info.family)
    files = {path: load_lora(path) for path in plan.network_files}
    for lora in files.values():  # every network checked before the model's weights are read
        check_finite_lora(lora, "--network")
        check_family(lora, info.family, f"{model} ({info.evidence})")
    embeddings = plan.settings.get("embeddings") or []
    if embeddings and not declaration(info.family).embedding_keys:
        raise InputError(msg("tool.generate_embedding_family", "--embedding: {model} is {family}, which takes no "
                             "Textual Inversion embeddings (SD 1.x/2.x and SDXL do)", model=model,
                             family=declaration(info.family).label))
    components = spec.load(model, v_prediction=True if args.v_parameterization else None, dtype=dtype,
                           files={name: getattr(args, name, None) for name in model_file_options()})
    for module in (components.unet, components.vae, *components.text_encoders):
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return spec, components, files


def _parameters(job: Job, sampler: str, model: str, clip_skip: int | None) -> str:
    networks = ", ".join(f"{Path(path).stem}:{weight:g}" for path, weight in job.networks)
    extra: dict[str, object] = {"Model": Path(model).stem}
    if networks:
        extra["Networks"] = networks
    return format_parameters(job.prompt, sampler, job.seed, output_name=None, step=None, epoch=None,
                             clip_skip=clip_skip, extra=extra)


def _order(jobs: list[Job]) -> list[Job]:
    """Jobs with the same networks and weights together (one merge each), otherwise in plan order."""
    first: dict[tuple[tuple[str, float], ...], int] = {}
    for job in jobs:
        first.setdefault(job.networks, len(first))
    return sorted(jobs, key=lambda job: (first[job.networks], job.number))


@torch.no_grad()
def generate(args: argparse.Namespace, plan: Plan) -> None:
    check_device(args.device)
    device = _resolve(torch.device(args.device))
    dtype = dtype_of(args.precision) or torch.float32
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32  # CPUs compute half precision slowly or not at all
    spec, components, files = _load(args, plan, device, dtype)
    expanded = add_embeddings(components, list(plan.settings.get("embeddings") or []))
    pipeline = spec.pipeline(components)  # type: ignore[attr-defined]
    pipeline.set_progress_bar_config(disable=True)
    networks = AppliedNetworks(components, files, device)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    progress = ItemProgress(len(plan.jobs), "generate")
    written: dict[int, Path] = {}
    images: dict[int, Image.Image] = {}
    for job in _order(plan.jobs):
        networks.use(job.networks)
        prompt: SamplePrompt = job.prompt
        shown = type(prompt)(**{**prompt.__dict__, "prompt": expand_words(prompt.prompt, expanded),
                                "negative_prompt": expand_words(prompt.negative_prompt, expanded)})
        sampler = prompt.sample_sampler or args.sampler
        with _autocast(device, dtype):
            image = spec.render_sample(pipeline, components, shown, sampler, job.seed,  # type: ignore[attr-defined]
                                       clip_skip=args.clip_skip, max_token_length=None)
        path = outdir / image_name(plan, job, stamp)
        _save_png(image, path, _parameters(job, sampler, args.pretrained_model_name_or_path, args.clip_skip))
        print(msg("tool.generate_written", "image {number}/{total}: {path}", number=job.number,
                  total=len(plan.jobs), path=path), flush=True)
        written[job.number] = path
        if plan.x is not None:
            images[job.number] = image
        progress.advance(path)
    output: Path = outdir
    if plan.x is not None and plan.y is not None:
        output = write_grid(plan, images, written, outdir / f"{stamp}-grid.png", args)
        print(msg("tool.generate_grid_written", "grid: {path}", path=output), flush=True)
    progress.end(output=output)


def grid_record(plan: Plan, written: dict[int, Path], args: argparse.Namespace) -> dict[str, object]:
    """What the grid's JSON (and its PNG text) holds: the axes, the shared settings and every cell."""
    assert plan.x is not None and plan.y is not None
    first = plan.jobs[0].prompt
    return {
        "model": args.pretrained_model_name_or_path,
        "x": {"axis": plan.x.kind, "values": list(plan.x.values), "labels": list(plan.x.labels)},
        "y": {"axis": plan.y.kind, "values": list(plan.y.values), "labels": list(plan.y.labels)},
        "networks": [{"file": path, "weight": weight} for path, weight in plan.networks],
        "embeddings": list(plan.settings.get("embeddings") or []),
        "prompt": first.prompt, "negative_prompt": first.negative_prompt or "",
        "size": list(first.size), "steps": first.sample_steps, "cfg": first.scale,
        "sampler": first.sample_sampler or args.sampler, "precision": args.precision,
        "cells": [{"x": job.x, "y": job.y, "file": written[job.number].name, "seed": job.seed,
                   "prompt": job.prompt.prompt, "cfg": job.prompt.scale, "steps": job.prompt.sample_steps,
                   "sampler": job.prompt.sample_sampler or args.sampler,
                   "networks": [{"file": path, "weight": weight} for path, weight in job.networks]}
                  for job in plan.jobs],
    }


def write_grid(plan: Plan, images: dict[int, Image.Image], written: dict[int, Path], path: Path,
               args: argparse.Namespace) -> Path:
    """One grid per prompt (a prompt axis: one in all); the first is `path`, more get `-2`, `-3`, ..."""
    assert plan.x is not None and plan.y is not None
    per_grid = len(plan.x.values) * len(plan.y.values)
    first_path = path
    for number, start in enumerate(range(0, len(plan.jobs), per_grid), 1):
        jobs = plan.jobs[start:start + per_grid]
        cells = [[images[job.number] for job in jobs[row * len(plan.x.values):(row + 1) * len(plan.x.values)]]
                 for row in range(len(plan.y.values))]
        grid = draw_grid(cells, plan.x.labels, plan.y.labels, plan.x.kind, plan.y.kind)
        target = path if number == 1 else path.with_name(f"{path.stem}-{number}.png")
        record = grid_record(Plan(jobs, plan.x, plan.y, plan.networks, plan.settings), written, args)
        _save_png(grid, target, json.dumps(record, ensure_ascii=False))
        with atomic_path(target.with_suffix(".json")) as temp:
            Path(temp).write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        if number == 1:
            first_path = target
    return first_path
