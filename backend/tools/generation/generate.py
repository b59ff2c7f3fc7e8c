"""Generate images from a base model with networks and embeddings, optionally as an X/Y grid.

    python -m backend.tools.generate --pretrained_model_name_or_path MODEL --outdir OUT
        [--network FILE[:WEIGHT]]... [--embedding FILE]... (--prompt TEXT... | --from_file PROMPTS)
        [--images_per_prompt N] [--seed S] [--sampler NAME] [--steps N] [--cfg X] [--width W] [--height H]
        [--xy X_AXIS=VALUES Y_AXIS=VALUES] [--precision fp16|bf16|float] [--device cuda|cpu]

Prompts use sd-scripts' syntax (`text --n negative --w --h --d --l --s --ss`); the command's values are the
defaults a prompt's own options override. Every argument, file and axis value is checked before torch is
imported, every network file's family and every embedding's shape against the model before its weights are read
(plan.py). The model is loaded once; networks are applied to its weights at each image's weights and taken off
again (the LoRA tools' merge, so LoRA, LoCon, LoHa, LoKr and DyLoRA files all work). Images are written atomically
as `<outdir>/<stamp>-NNNN.png` with A1111-style "parameters" text; a grid as `<stamp>-grid.png` (parameters in
its PNG text) with `<stamp>-grid.json` beside it and its cells as `<stamp>-xNN-yNN.png` (a grid per prompt: the
second one `<stamp>-grid-2.png`, its cells `<stamp>-g2-xNN-yNN.png`). One progress `step` line per image.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Sequence
from dataclasses import replace

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_file, input_model, output_folder
from backend.tools.cli.light_cli import InputError, run_light_tool
from backend.tools.flags.generation import GENERATE
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.flags.parser import check_ranges
from backend.tools.generation.plan import (
    Plan,
    check_weight_axis,
    parse_axes,
    parse_network,
    plan_jobs,
    prompt_defaults,
    with_defaults,
)
from backend.training.sample_prompts import PromptFileError, load_sample_prompts


def build_parser() -> argparse.ArgumentParser:
    return parser_of(GENERATE)  # the flags: backend/tools/flags/generation.py


def _prompts(args: argparse.Namespace, defaults: dict[str, object]) -> list:
    lines = [row[0] for row in args.prompt]
    prompts = [with_defaults(line, defaults, msg("tool.generate_prompt_at", "--prompt {number}", number=n + 1), n)
               for n, line in enumerate(lines)]
    if args.from_file:
        path = input_file(args.from_file, "--from_file", suffixes=(".txt", ".toml", ".json"),
                          what=msg("tool.what_prompt_file", "prompt file"))
        try:
            if path.suffix.lower() == ".txt":
                from backend.options.toml_lines import read_toml_text

                text = read_toml_text(path)
                numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                            if line.strip() and not line.strip().startswith("#")]
                prompts += [with_defaults(line, defaults, msg("preflight.prompts.at_line", "{path}, line {line}",
                                                              path=path, line=n), len(prompts) + i)
                            for i, (n, line) in enumerate(numbered)]
            else:
                prompts += [replace(p, index=len(prompts) + i) for i, p in enumerate(load_sample_prompts(path))]
        except PromptFileError as error:
            raise InputError(str(error)) from None
        except Exception as error:  # not UTF-8 and the like
            raise InputError(f"--from_file {path}: {error}") from None
    if not prompts:
        raise InputError(msg("tool.generate_no_prompt", "no prompt: give --prompt TEXT (repeatable) or --from_file "
                             "PROMPTS.txt"))
    return prompts


def check_args(args: argparse.Namespace) -> Plan:
    """Everything that can be checked without torch; returns the plan of the images."""
    check_ranges(args, GENERATE)
    input_model(args.pretrained_model_name_or_path, "--pretrained_model_name_or_path")
    from backend.families import model_file_options

    for name in model_file_options():
        value = getattr(args, name, None)
        if value:
            input_file(value, f"--{name}", suffixes=(*WEIGHT_SUFFIXES, ".sft"))
    networks = [parse_network(row[0]) for row in args.network]
    for path, _ in networks:
        input_file(path, "--network", suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_network_file", "network file"))
    for row in args.embedding:
        input_file(row[0], "--embedding", suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_embedding_file",
                                                                             "embedding file"))
    output_folder(args.outdir, "--outdir")
    x, y = parse_axes(args.xy)
    check_weight_axis(x, y, networks)
    if x is not None and args.images_per_prompt != 1:
        raise InputError(msg("tool.generate_grid_images_per_prompt", "--images_per_prompt {count} with --xy: a grid "
                             "shows one image per cell; leave --images_per_prompt at 1, or make seed an axis",
                             count=args.images_per_prompt))
    defaults = prompt_defaults(args)
    prompts = _prompts(args, defaults)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    plan = plan_jobs(prompts, args.images_per_prompt, seed, networks, x, y, defaults)
    plan.settings = {"model": args.pretrained_model_name_or_path, "seed": seed, "precision": args.precision,
                     "clip_skip": args.clip_skip,
                     "embeddings": [row[0] for row in args.embedding]}
    return plan


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    plan = check_args(args)
    from backend.tools.generation.render import generate  # torch: only once the arguments are sound

    generate(args, plan)


if __name__ == "__main__":
    raise SystemExit(run_light_tool(main))
