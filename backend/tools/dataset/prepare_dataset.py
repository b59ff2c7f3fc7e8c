"""Build a DreamBooth-style training folder from image folders (kohya_ss' "Dreambooth folder preparation").

    python -m backend.tools.prepare_dataset OUT --concept SRC INSTANCE CLASS [--concept SRC2 INSTANCE2 CLASS2 ...]
        [--reg REG_SRC CLASS ...] [--repeats 10 | --balance IMAGES_PER_EPOCH] [--reg_repeats 1]
        [--link copy|hardlink|symlink] [--caption_extension .txt]
        [--group_by_aspect [--resolution 512] [--min_bucket_reso 256] [--max_bucket_reso 1024]
         [--bucket_reso_steps 64] [--bucket_no_upscale]] [--dry_run]

Writes `OUT/img/<repeats>_<INSTANCE> <CLASS>/` per concept and `OUT/reg/<reg_repeats>_<CLASS>/` per
regularization folder, copying (or linking) each image with its caption files (`.txt`,
`.caption` and --caption_extension), plus empty `OUT/model` and `OUT/log`, as kohya_ss does, and
prints the trainer flags. An existing file is never replaced: it is reported as skipped, so the
command can be run again after adding images.

--balance N sets each concept's repeats to round(N / its image count) (at least 1), so every
concept gives about N images per epoch whatever its size (backend/tools/dataset/dataset_layout.py).

--group_by_aspect puts each concept's images into one subfolder per aspect-ratio bucket
(`OUT/img/10_sks dog/768x512/`; buckets as the trainer computes them for the given resolution),
to see and prune the distribution. The folder convention reads only images directly inside
`<repeats>_<tokens>`, so in this mode OUT/dataset.toml lists every bucket folder as a subset with
the concept's class tokens and repeats: train with `--dataset_config OUT/dataset.toml`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import toml

from backend.atomic import atomic_write
from backend.messages import msg
from backend.tools.cli.arg_checks import one_line_path
from backend.tools.cli.light_cli import InputError, ItemProgress, Summary, run_light_tool
from backend.tools.dataset.caption_files import normalize_extension
from backend.tools.dataset.dataset_layout import (
    SIDECAR_EXTENSIONS,
    Concept,
    ConceptPlan,
    LinkMode,
    Placement,
    already_there,
    check_tokens,
    place_file,
    plan_concepts,
    plan_placements,
)
from backend.tools.flags.dataset import PREPARE_DATASET
from backend.tools.flags.parser import build_parser as parser_of


def build_parser() -> argparse.ArgumentParser:
    return parser_of(PREPARE_DATASET)  # the flags: backend/tools/flags/dataset.py


def concepts_from(args: argparse.Namespace) -> list[Concept]:
    if not args.concept:
        raise InputError(msg("tool.no_concept", "no concept given: pass --concept SRC INSTANCE CLASS (for example "
                             "--concept ./photos sks dog)"))
    concepts = [Concept(Path(src), check_tokens(f"{instance} {cls}", "--concept INSTANCE CLASS"))
                for src, instance, cls in args.concept]
    concepts += [Concept(Path(src), check_tokens(cls, "--reg CLASS"), is_reg=True) for src, cls in args.reg]
    return concepts


def bucket_groups(plans: Sequence[ConceptPlan], args: argparse.Namespace, summary: Summary) -> dict[Path, str]:
    """image -> '<W>x<H>' bucket folder name, with the trainer's own bucket rules (imports backend.data)."""
    from backend.data.buckets import BucketSelector
    from backend.data.errors import DatasetError
    from backend.data.images import probe_image
    from backend.data.specs import DatasetSpec

    try:
        spec = DatasetSpec((), args.resolution, enable_bucket=True, min_bucket_reso=args.min_bucket_reso,
                           max_bucket_reso=args.max_bucket_reso, bucket_reso_steps=args.bucket_reso_steps,
                           bucket_no_upscale=args.bucket_no_upscale)
        selector = BucketSelector(spec, warn=print)
    except DatasetError as exc:
        raise InputError(str(exc)) from None
    groups: dict[Path, str] = {}
    for plan in plans:
        for image in plan.images:
            probe = probe_image(image)
            if probe.size is None:
                summary.fail(image, msg("tool.not_placed_no_bucket", "{problem}: not placed (no bucket)",
                                        problem=probe.problem or msg("tool.unreadable_image", "unreadable image")))
                continue
            try:
                width, height = selector.select(*probe.size).reso
            except DatasetError as exc:
                summary.fail(image, str(exc))
                continue
            groups[image] = f"{width}x{height}"
    return groups


def dataset_config(plans: Sequence[ConceptPlan], roots: dict[Concept, Path], groups: dict[Path, str],
                   caption_extension: str) -> dict:
    subsets = []
    for plan in plans:
        for bucket in sorted({groups[i] for i in plan.images if i in groups}):
            subset = {"image_dir": str((roots[plan.concept] / bucket).resolve()), "num_repeats": plan.repeats,
                      "class_tokens": plan.concept.tokens}
            if plan.concept.is_reg:
                subset["is_reg"] = True
            subsets.append(subset)
    return {"general": {"caption_extension": caption_extension}, "datasets": [{"subsets": subsets}]}


def print_plan(plans: Sequence[ConceptPlan], roots: dict[Concept, Path], caption_extension: str) -> None:
    for plan in plans:
        numbers = {"folder": roots[plan.concept], "images": len(plan.images), "repeats": plan.repeats,
                   "per_epoch": plan.images_per_epoch, "extension": caption_extension,
                   "captions": sum((image.with_suffix(caption_extension)).is_file() for image in plan.images)}
        if plan.concept.is_reg:
            print(msg("tool.plan_reg_folder", "reg {folder}: {images} images x {repeats} repeats = {per_epoch} per "
                      "epoch; {captions} with a {extension} caption", **numbers))
        else:
            print(msg("tool.plan_folder", "{folder}: {images} images x {repeats} repeats = {per_epoch} per epoch; "
                      "{captions} with a {extension} caption", **numbers))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.balance is not None and args.repeats is not None:
        raise InputError(msg("tool.repeats_and_balance",
                             "--repeats and --balance exclude each other: --balance chooses the repeats"))
    extension = normalize_extension(args.caption_extension)
    one_line_path(args.out, "out")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(msg("tool.destination_is_file", "the destination must be a folder, but {path} is a file",
                             path=out))
    plans = plan_concepts(concepts_from(args), args.repeats or 10, args.reg_repeats, args.balance)
    roots = {p.concept: out / ("reg" if p.concept.is_reg else "img") / p.folder_name for p in plans}
    for plan in plans:
        if roots[plan.concept].resolve() == plan.concept.source.resolve():
            raise InputError(msg("tool.source_is_destination", "{path} is already the destination folder: choose "
                                 "another OUT", path=plan.concept.source))
    summary = Summary()
    groups = bucket_groups(plans, args, summary) if args.group_by_aspect else None
    placements: list[Placement] = []
    for plan in plans:
        images = plan if groups is None else ConceptPlan(plan.concept, tuple(i for i in plan.images if i in groups),
                                                         plan.repeats)
        placements += plan_placements(images, roots[plan.concept], (*SIDECAR_EXTENSIONS, extension), groups)
    print_plan(plans, roots, extension)
    config = dataset_config(plans, roots, groups, extension) if groups is not None else None
    if args.dry_run:
        for placement in placements:
            print(f"{placement.source} -> {placement.destination}")
        if config is not None:
            print(msg("tool.would_write_config", "would write {path}:\n{config}", path=out / "dataset.toml",
                      config=toml.dumps(config)))
        summary.written = [str(p.destination) for p in placements]
        summary.print("would_place")
        return 0
    progress = ItemProgress(len(placements), "prepare_dataset", enabled=not args.no_progress)
    for placement in placements:
        problem = place_file(placement, LinkMode(args.link))
        if problem is None:
            summary.written.append(str(placement.destination))
        elif already_there(problem):
            summary.skip(placement.destination, problem)
        else:
            summary.fail(placement.source, problem)
        progress.advance(placement.destination)
    for folder in ("model", "log"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    flags = _trainer_flags(out, plans, config, summary)
    progress.end(out)
    summary.print("placed")
    print(msg("tool.trainer_flags", "trainer flags: {flags}", flags=" ".join(flags)))
    return 0


def _trainer_flags(out: Path, plans: Sequence[ConceptPlan], config: dict | None, summary: Summary) -> list[str]:
    import shlex

    if config is not None:
        path = out / "dataset.toml"
        text = toml.dumps(config)
        if path.exists() and path.read_text(encoding="utf-8") != text:
            path = out / "dataset.new.toml"  # never replace a config the user may have edited
            summary.skip(out / "dataset.toml", msg("tool.config_exists_differs", "exists and differs: the new one is "
                                                   "{name}", name=path.name))
        with atomic_write(path) as f:
            f.write(text)
        flags = ["--dataset_config", str(path)]
    else:
        flags = ["--train_data_dir", str(out / "img")]
        if any(p.concept.is_reg for p in plans):
            flags += ["--reg_data_dir", str(out / "reg")]
    flags += ["--output_dir", str(out / "model"), "--logging_dir", str(out / "log")]
    return [shlex.quote(f) for f in flags]


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
