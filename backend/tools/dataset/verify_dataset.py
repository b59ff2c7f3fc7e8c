"""Check a training folder before training: counts, bad or tiny images, missing captions, buckets.

    python -m backend.tools.verify_dataset DIR [--reg_data_dir REG] [--caption_extension .caption]
        [--resolution 512] [--no_bucket] [--min_bucket_reso 256] [--max_bucket_reso 1024]
        [--bucket_reso_steps 64] [--bucket_no_upscale] [--batch_size 1] [--min_size 256] [--json]

DIR is a `--train_data_dir` (the parent of `<repeats>_<tokens>` folders); a folder that holds
images directly is checked as one folder with 1 repeat, with a note that the trainer needs it
inside a `<repeats>_<tokens>` folder. The checks are the trainer's own (backend/data: discovery,
scan, buckets), so what this reports is what training will see. Exit status: 0 when the dataset
can be trained on as it is (warnings such as missing captions or tiny images allowed), 1 when
images are unusable or nothing can be trained, 2 for a missing folder or bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from backend.messages import msg
from backend.tools.cli.light_cli import InputError, run_light_tool
from backend.tools.dataset.caption_files import image_folder, normalize_extension
from backend.tools.flags.dataset import VERIFY_DATASET
from backend.tools.flags.parser import build_parser as parser_of

SHOWN = 20  # paths listed per problem in the text report (the JSON lists all)


def build_parser() -> argparse.ArgumentParser:
    return parser_of(VERIFY_DATASET)  # the flags: backend/tools/flags/dataset.py


def verify(args: argparse.Namespace) -> dict[str, Any]:
    """The report (see `format_report` for its fields); dataset problems are entries, not exceptions."""
    root = image_folder(args.train_data_dir, "train_data_dir")
    if args.reg_data_dir is not None:
        image_folder(args.reg_data_dir, "reg_data_dir")
    extension = normalize_extension(args.caption_extension)
    # The trainer's data layer imports torch: only once the folders are found.
    from backend.data.dataset import TrainDataset
    from backend.data.discovery import scan_root, subsets_from_folders
    from backend.data.errors import DatasetError
    from backend.data.scan import scan_dataset
    from backend.data.specs import DatasetSpec, SubsetSpec
    from backend.data.summary import bucket_table

    warnings: list[str] = []
    report: dict[str, Any] = {"ok": False, "train_data_dir": str(root), "errors": [], "warnings": warnings,
                              "subsets": [], "unreadable": [], "tiny": [], "buckets": []}
    layout = scan_root(root)
    try:
        if not layout.subsets and layout.loose_images and args.reg_data_dir is None:
            warnings.append(msg("tool.verify_loose_images", "{folder} holds images directly: checked as one folder "
                                "with 1 repeat; for training, put them in a '<repeats>_<tokens>' folder (python -m "
                                "backend.tools.prepare_dataset)", folder=root))
            subsets = [SubsetSpec(image_dir=str(root), caption_extension=extension)]
        else:
            subsets = subsets_from_folders(root, args.reg_data_dir, warn=warnings.append, caption_extension=extension)
        spec = DatasetSpec(tuple(subsets), args.resolution, batch_size=args.batch_size, enable_bucket=not args.no_bucket,
                           min_bucket_reso=args.min_bucket_reso, max_bucket_reso=args.max_bucket_reso,
                           bucket_reso_steps=args.bucket_reso_steps, bucket_no_upscale=args.bucket_no_upscale)
        scan = scan_dataset(spec, warn=warnings.append)
    except DatasetError as exc:
        report["errors"].append(str(exc))
        return report
    for subset_scan in scan.subsets:
        subset = subset_scan.subset
        report["subsets"].append({
            "image_dir": subset.image_dir, "is_reg": subset.is_reg, "num_repeats": subset.num_repeats,
            "class_tokens": subset.class_tokens, "images": len(subset_scan.images),
            "captions_found": len(subset_scan.images) - len(subset_scan.captions.missing),
            "captions_missing": len(subset_scan.captions.missing),
            "missing_captions": [str(p) for p in subset_scan.captions.missing],
            "caption_hint": subset_scan.captions.hint(subset),
        })
    report["images"] = sum(len(s.images) for s in scan.subsets)
    report["tiny"] = [{"path": r.path, "size": list(r.image_size)} for r in scan.records
                      if min(r.image_size) < args.min_size]
    if report["tiny"]:
        warnings.append(msg("tool.verify_tiny_images", "{count} image(s) have a short side below {min_size} pixels and "
                            "will be enlarged (blurry training targets): replace them with larger images or remove them",
                            count=len(report["tiny"]), min_size=args.min_size))
    try:
        dataset = TrainDataset(spec, scan=scan, skip_bad_images=True, warn=lambda _: None)
    except DatasetError as exc:
        report["unreadable"] = [p.as_dict() for p in scan.problems]
        report["errors"].append(str(exc))
        return report
    report["unreadable"] = [p.as_dict() for p in dataset.problems]
    report.update(buckets=bucket_table(dataset), num_train_images=dataset.num_train_images,
                  num_reg_images=dataset.num_reg_images, num_batches_per_epoch=len(dataset))
    report["ok"] = not report["errors"] and not report["unreadable"]
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as text in the user's language (the JSON report's keys stay as they are)."""
    if report["ok"]:
        lines = [msg("tool.verify_ok", "dataset {folder}: OK", folder=report["train_data_dir"])]
    else:
        lines = [msg("tool.verify_not_ready", "dataset {folder}: NOT READY", folder=report["train_data_dir"])]
    for subset in report["subsets"]:
        numbers = {"folder": subset["image_dir"], "images": subset["images"], "repeats": subset["num_repeats"],
                   "captioned": subset["captions_found"], "missing": subset["captions_missing"]}
        if subset["is_reg"]:
            lines.append(msg("tool.verify_reg_subset", "  reg {folder}: {images} images x {repeats} repeats, "
                             "{captioned} captioned, {missing} without caption", **numbers))
        else:
            lines.append(msg("tool.verify_subset", "  {folder}: {images} images x {repeats} repeats, {captioned} "
                             "captioned, {missing} without caption", **numbers))
        lines += [msg("tool.verify_no_caption", "    no caption: {path}", path=p) for p in subset["missing_captions"][:SHOWN]]
        if subset["caption_hint"]:
            lines.append(msg("tool.verify_hint", "    hint: {hint}", hint=subset["caption_hint"]))
    if "num_train_images" in report:
        lines.append(msg("tool.verify_per_epoch", "images per epoch (with repeats): {train} training, {reg} "
                         "regularization; {batches} batches", train=report["num_train_images"],
                         reg=report["num_reg_images"], batches=report["num_batches_per_epoch"]))
    if report["buckets"]:
        lines.append(msg("tool.verify_bucket_header", "    bucket (WxH)  images  with repeats  batches"))
        for row in report["buckets"]:
            width, height = row["resolution"]
            lines.append(f"  {f'{width}x{height}':>14} {row['images']:>7} {row['count']:>13} {row['batches']:>8}")
    for problem in report["unreadable"][:SHOWN]:
        lines.append(msg("tool.verify_unusable", "unusable: {path}: {problem} ({fix})",
                         path=problem["path"], problem=problem["problem"], fix=problem["fix"]))
    for tiny in report["tiny"][:SHOWN]:
        lines.append(msg("tool.verify_tiny", "tiny: {path}: {size}", path=tiny["path"],
                         size=f"{tiny['size'][0]}x{tiny['size'][1]}"))
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"error: {e}" for e in report["errors"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.min_size < 0:
        raise InputError(msg("tool.verify_bad_numbers", "--batch_size must be 1 or more and --min_size 0 or more"))
    report = verify(args)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
