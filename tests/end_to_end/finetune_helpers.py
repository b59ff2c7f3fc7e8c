"""The fine-tune workflow's shared steps: metadata from captions and tags, buckets and latents, reading saves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from backend.models.loading import load_components
from backend.tools.metadata import (
    clean_captions_and_tags,
    merge_captions_to_metadata,
    merge_dd_tags_to_metadata,
    prepare_buckets_latents,
)
from backend.tools.metadata.metadata_io import run_metadata_tool

from .helpers import make_images

PARTS_SD = ("unet", "text_encoder1", "vae")
PARTS_SDXL = ("unet", "text_encoder1", "text_encoder2", "vae")


def prepare_metadata(root: Path, model: Path, model_flags: Sequence[str] = ()) -> tuple[Path, Path]:
    """Captions + tags -> merged metadata -> cleaned -> buckets and latents: (image folder, metadata file).
    `model_flags`: what prepare_buckets_latents needs to know of the model (SD 2.x: --v2)."""
    folder = root / "imgs"
    paths = make_images(folder, 3, sizes=[(64, 64), (128, 64), (64, 64)], caption="a young woman",
                        caption_extension=".caption")
    for path in paths:
        path.with_suffix(".txt").write_text("long_hair, shirt, rating:safe", encoding="utf-8")
    for tool, argv in (
        (merge_captions_to_metadata, [folder, root / "meta.json"]),
        (merge_dd_tags_to_metadata, [folder, root / "meta.json"]),
        (clean_captions_and_tags, [root / "meta.json", root / "clean.json"]),
        (prepare_buckets_latents, [folder, root / "clean.json", root / "lat.json", model, "--max_resolution",
                                   "128,64", "--min_bucket_reso", "64", "--max_bucket_reso", "128", *model_flags]),
    ):
        assert run_metadata_tool(tool.main, [str(a) for a in argv]) == 0, tool.__name__
    return folder, root / "lat.json"


def ft_flags(model: Path, folder: Path, metadata: Path, out: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model), "--in_json", str(metadata), "--train_data_dir", str(folder),
            "--output_dir", str(out), "--output_name", "tiny", "--resolution", "64", "--max_data_loader_n_workers",
            "0", "--seed", "3", "--learning_rate", "1e-3", "--cache_latents_to_disk", *extra]


def weights(path: Path, tokenizer_cache_dir: Path | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Every part's weights of a saved model (file or diffusers folder), read with our loader (a single
    file needs the tiny model's tokenizer cache: nothing is downloaded)."""
    components = load_components(path, tokenizer_cache_dir=tokenizer_cache_dir)
    parts = {"unet": components.unet, "vae": components.vae}
    parts.update({f"text_encoder{i}": te for i, te in enumerate(components.text_encoders, start=1)})
    return {name: {k: v.detach().clone() for k, v in module.state_dict().items()} for name, module in parts.items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_trained(saved: dict, base: dict, trained: set[str]) -> None:
    """Trained parts differ from the base model; every other part is the base model's, bit for bit."""
    for name in saved:
        if name in trained:
            assert not same(saved[name], base[name]), f"{name} was trained but equals the base model"
        else:
            assert same(saved[name], base[name]), f"{name} was not trained but differs from the base model"
