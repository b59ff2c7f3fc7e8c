"""Generate a tiny, architecture-faithful model of a family, with random weights, in about a second.

    python -m devtools.make_tiny_model --arch sd15|sd2|sd2-v|sdxl|flux-dev|flux-schnell|chroma|sd3-medium|sd3-large|ltx-video|wan2.1-t2v-1.3b|hunyuan-video|cogvideox-5b \
        --out DIR [--single-file]
        [--seed N]
    python -m devtools.make_tiny_model --arch blip|git|wd14 --out DIR   (captioners: tiny_captioners.py)

Without ``--single-file`` DIR becomes a diffusers pipeline folder (loadable by
``StableDiffusionPipeline``/``StableDiffusionXLPipeline.from_pretrained(DIR)``). With it, DIR gets
``tiny-<arch>.safetensors`` in the original Stability layout and ``DIR/tokenizer_cache`` laid out as
sd-scripts' ``--tokenizer_cache_dir`` expects; the flags to pass to a trainer are printed. Families whose
single files hold the denoiser alone (FLUX.1: `FamilyDeclaration.part_flags`) get their other parts as
files of their own beside it (``ae.safetensors``, ``clip_l.safetensors``, ``t5xxl.safetensors``), passed
by those flags (devtools/tiny_flux.py). Video families (`FamilyDeclaration.is_video`: ltx-video,
wan2.1-t2v-1.3b, hunyuan-video|cogvideox-5b) are diffusers folders only, written by ``devtools/tiny_<video_model_name>.py``'s ``write_tiny``.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from backend.atomic import atomic_folder
from backend.families import config_sets, of_config_set
from backend.messages import msg
from backend.tools.cli.arg_checks import output_folder
from backend.tools.cli.light_cli import InputError, run_light_tool

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from backend.models.configs import ArchConfigs

# The option of the tool that loads each tiny captioner from its folder (tiny_captioners.BUILDERS).
CAPTIONER_FLAGS = {"blip": "--model_id", "git": "--model_id", "wd14": "--model_dir"}
# Files that show a folder holds an earlier model of that kind, which --out may replace.
MODEL_MARKERS = {"blip": "config.json", "git": "config.json", "wd14": "model.onnx"}


@dataclass(frozen=True)
class TinyModel:
    arch: str
    path: Path  # diffusers folder or single file
    tokenizer_cache_dir: Path | None  # only for single files
    # Part files passed by flags of their own (FLUX.1: {"ae": ..., "clip_l": ..., "t5xxl": ...}); single files only.
    part_files: dict[str, Path] = field(default_factory=dict)

    def trainer_flags(self) -> list[str]:
        flags = ["--pretrained_model_name_or_path", str(self.path)]
        for flag, path in self.part_files.items():
            flags += [f"--{flag}", str(path)]
        if self.arch in ("sd2", "sd2-v"):
            flags.append("--v2")
        if self.arch == "sd2-v":
            flags.append("--v_parameterization")
        if self.tokenizer_cache_dir is not None:
            flags += ["--tokenizer_cache_dir", str(self.tokenizer_cache_dir)]
        return flags


def _token_ids(tokenizer: CLIPTokenizer) -> dict[str, int | None]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _random_modules(configs: ArchConfigs) -> tuple[UNet2DConditionModel, AutoencoderKL, list[CLIPTextModel]]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from backend.models.loading import text_encoder_class

    unet = UNet2DConditionModel.from_config(configs.unet)
    vae = AutoencoderKL.from_config(configs.vae)
    text_encoders = [text_encoder_class(cfg)(CLIPTextConfig.from_dict(cfg)) for cfg in configs.text_encoders]
    return unet.eval(), vae.eval(), [te.eval() for te in text_encoders]


def make_tiny_model(arch: str, out: str | Path, *, single_file: bool = False, seed: int = 0) -> TinyModel:
    """Write a tiny ``arch`` model to ``out`` (see the module docstring) and describe where it is.

    Each output appears whole or not at all: a diffusers folder and each tokenizer folder are
    built beside their final name and renamed into place (the single file is saved atomically)."""
    import torch

    from backend.models.components import Components
    from backend.models.saving import save_components
    from backend.models.tokenizers import cache_folder
    from devtools.tiny_llama_tokenizer import write_tiny_llama_tokenizer
    from devtools.tiny_model_configs import tiny_arch_configs
    from devtools.tiny_t5_tokenizer import write_tiny_t5_tokenizer
    from devtools.tiny_tokenizer import write_tiny_tokenizer

    if arch not in config_sets():
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(config_sets())}")
    out = Path(out)
    if not single_file:
        check_replaceable(out, "model_index.json", "out")
    family = of_config_set(arch)
    if family.is_video and single_file:  # diffusers folders only, written by devtools/tiny_<video_model_name>.py
        raise ValueError(msg("tool.tiny_video_single_file", "{arch} is a video model: its tiny model is a "
                             "diffusers folder, leave out --single-file", arch=arch))
    out.mkdir(parents=True, exist_ok=True)
    hub = family.hub_tokenizers
    with tempfile.TemporaryDirectory() as tmp:
        # Generated once, then copied: v5 tokenizers save only tokenizer.json, and older
        # tools expect the vocab.json/merges.txt pair as well.
        sources = [Path(tmp) / f"tokenizer_{i}" for i in range(len(hub))]
        writers = {"t5": write_tiny_t5_tokenizer, "llama": write_tiny_llama_tokenizer}
        tokenizers = [
            writers[entry.kind](src) if entry.kind in writers else write_tiny_tokenizer(src, entry.pad_with_bang)
            for src, entry in zip(sources, hub, strict=True)
        ]
        configs = tiny_arch_configs(arch, [_token_ids(t) for t in tokenizers])
        if family.is_video:  # a video family's own writer: devtools/tiny_<video_model_name>.py
            writer = import_module(f"devtools.tiny_{family.video_model_name}")
            return writer.write_tiny(arch, configs, tokenizers, sources, out, single_file=single_file, seed=seed)
        if family.parts_may_be_inside:  # SD 3.5: one whole file (parts inside), or a diffusers folder
            from devtools.tiny_sd3 import write_tiny_sd3

            return write_tiny_sd3(arch, configs, tokenizers, sources, out, single_file=single_file, seed=seed)
        if family.part_flags:  # the denoiser alone in single files: the parts are files of their own
            from devtools.tiny_flux import write_tiny_flux

            return write_tiny_flux(arch, configs, tokenizers, sources, out, single_file=single_file, seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet, vae, text_encoders = _random_modules(configs)
        components = Components(
            configs.family, configs, unet, vae, text_encoders, tokenizers, source=f"tiny {arch}"
        )
        if single_file:
            cache = out / "tokenizer_cache"
            path = save_components(components, out / f"tiny-{arch}.safetensors")
            for src, entry in zip(sources, hub, strict=True):
                with atomic_folder(cache_folder(cache, entry.hub_id)) as folder:
                    shutil.copytree(src, folder, dirs_exist_ok=True)
            return TinyModel(arch, path, cache)
        with atomic_folder(out) as folder:
            save_components(components, folder)
            for src, name in zip(sources, family.tokenizer_folders, strict=True):
                shutil.copytree(src, folder / name, dirs_exist_ok=True)
    return TinyModel(arch, out, None)


def check_replaceable(out: Path, marker: str, flag: str = "--out") -> None:
    """A folder that becomes the model folder itself is replaced as a whole: it must be new, empty,
    or an earlier model (holding `marker`), never e.g. a folder of the user's files."""
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise InputError(msg("tool.tiny_out_not_model", "{flag} {out} holds other files than a model (no {marker}), "
                             "and it would be replaced as a whole; give a new or empty folder",
                             flag=flag, out=out, marker=marker))


def check_out(args: argparse.Namespace) -> None:
    """--out: a folder that can be written; see `check_replaceable` where it becomes the model folder."""
    out = output_folder(args.out, "--out")
    if not args.single_file:
        check_replaceable(out, MODEL_MARKERS.get(args.arch, "model_index.json"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.make_tiny_model", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--arch", required=True, choices=(*config_sets(), *CAPTIONER_FLAGS),
                        help="a model family, or a captioner/tagger (blip, git, wd14: devtools/tiny_captioners.py)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--single-file", action="store_true", help="write one original-layout .safetensors (FLUX.1: "
                        "the transformer, with the autoencoder and text encoders as files of their own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    check_out(args)
    if args.arch in CAPTIONER_FLAGS:
        from devtools.tiny_captioners import make_tiny_captioner

        with atomic_folder(args.out) as folder:
            make_tiny_captioner(args.arch, folder, seed=args.seed)
        print(msg("tool.tiny_model", "model: {path}", path=args.out))
        print(msg("tool.tiny_tool_flags", "tool flags: {flags}",
                  flags=f"{CAPTIONER_FLAGS[args.arch]} {shlex.quote(str(args.out))}"))
        return
    model = make_tiny_model(args.arch, args.out, single_file=args.single_file, seed=args.seed)
    print(msg("tool.tiny_model", "model: {path}", path=model.path))
    if model.tokenizer_cache_dir is not None:
        print(msg("tool.tiny_tokenizer_cache", "tokenizer cache: {path}", path=model.tokenizer_cache_dir))
    print(msg("tool.trainer_flags", "trainer flags: {flags}", flags=shlex.join(model.trainer_flags())))


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
