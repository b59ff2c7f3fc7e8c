"""The files a run reads besides the model and the images, checked in preflight at header level.

- `--network_weights`: a LoRA file to continue training from. A damaged, cut short or foreign file
  (`backend/models/file_checks.py`), or weights that are not an sd-scripts-layout network at all
  (a base model, a VAE, a diffusers/PEFT LoRA), would otherwise fail after the model is loaded, with
  a traceback. sd-scripts' layout: every key starts with `lora_` (`lora_unet_...`, `lora_te1_...`);
  LyCORIS files use the same names. Only a .safetensors file's names can be read without loading it;
  a pickle (.ckpt/.pt) gets the header checks only.
- `--resume`: the files of a state folder (accelerate's `optimizer.bin`, `custom_checkpoint_0.pkl`,
  ...) are zip archives whose index sits at the end, so a state copied or saved only in part is
  found without loading it.

Light: a header read per file, no torch.
"""

from __future__ import annotations

from pathlib import Path

from backend.families import declaration, label, network_files
from backend.messages import msg
from backend.models.errors import ModelFileError
from backend.models.file_checks import check_weights_file, read_safetensors_header

NETWORK_KEY_PREFIX = "lora_"
STATE_FILE_SUFFIXES = (".bin", ".pkl", ".pt", ".safetensors")
def network_weights_problem(path: str | Path, family: str | None = None,
                            option: str = "network_weights") -> str | None:
    """Why `path` cannot be given as --`option` (--network_weights, --base_weights) to train on a base model of
    `family`, or None."""
    file = Path(path)
    if not file.is_file():
        return msg("preflight.network_weights.not_found", "--{option} {path}: file not found", path=path,
                   option=option)
    try:
        if file.suffix.lower() != ".safetensors":
            check_weights_file(file)
            return None
        keys = read_safetensors_header(file).tensors  # after checking that the file holds what it announces
    except ModelFileError as exc:
        return msg("preflight.network_weights.damaged", "--{option} cannot be used: {problem}", problem=exc,
                   option=option)
    except OSError as exc:
        return msg("preflight.network_weights.unreadable", "--{option} {path}: cannot be read ({reason})",
                   path=path, reason=exc.strerror or exc, option=option)
    if any(key.startswith(NETWORK_KEY_PREFIX) for key in keys):
        fitting = network_files.undecided_layouts(keys)  # none: no layout's prefixes
        if family is None or not fitting or declaration(family).network_layout in fitting:
            return None
        return msg(
            "preflight.network_weights.other_family", "--{option} {path}: this network was trained on "
            "{trained_on} (its weight names say so), but the base model is {family}, so none of its weights would "
            "fit. Give a LoRA trained on the same kind of model, or start without --{option}",
            path=path, option=option, trained_on=network_files.families_of(fitting[0])[0].network_label,
            family=label(family),
        )
    return msg(
        "preflight.network_weights.not_a_network", "--{option} {path}: none of its {count} tensors is a "
        "network weight in sd-scripts' layout (names starting with lora_unet_ or lora_te), so it is not a LoRA file "
        "this trainer can read (a base model, a VAE or an embedding, perhaps). Give a LoRA saved by a LoRA "
        "training; a LoRA in the diffusers/PEFT layout can be converted first with python -m "
        "backend.tools.convert_lora --to kohya", path=path, count=len(keys), option=option,
    )


def state_file_problems(folder: str | Path) -> list[str]:
    """The files of a --resume state folder that are empty, cut short or not what accelerate wrote."""
    problems = []
    try:
        files = sorted(Path(folder).iterdir())
    except OSError as exc:
        return [msg("preflight.resume.unreadable_folder", "--resume {folder}: cannot be read ({reason})",
                    folder=folder, reason=exc.strerror or exc)]
    for file in files:
        if not file.is_file() or file.suffix.lower() not in STATE_FILE_SUFFIXES:
            continue
        try:
            check_weights_file(file)
        except ModelFileError as exc:
            problems.append(msg(
                "preflight.resume.damaged_file", "--resume {folder}: the state is damaged ({problem}). Resume from "
                "another saved state or start without --resume", folder=folder, problem=exc,
            ))
        except OSError as exc:
            problems.append(msg("preflight.resume.unreadable_file", "--resume {folder}: {path} cannot be read "
                                "({reason})", folder=folder, path=file.name, reason=exc.strerror or exc))
    return problems


def network_rank_problem(path: str | Path, network_dim: int | None, conv_dim: int | None) -> str | None:
    """Why `--network_weights` (a networks.lora file) does not fit the ranks this run builds, or None.

    The rank of each module is the first dimension of its `lora_down` weight, read from the header. 3x3
    convolutions take `conv_dim` (and are not built without it: their weights are then only unused).
    """
    file = Path(path)
    if file.suffix.lower() != ".safetensors":
        return None
    try:
        shapes = read_safetensors_header(file).shapes()
    except (ModelFileError, OSError):
        return None  # said by network_weights_problem
    ranks: dict[int, int] = {}  # rank in the file -> modules
    conv_ranks: dict[int, int] = {}
    for name, shape in shapes.items():
        if not name.endswith(".lora_down.weight") or not shape:
            continue
        is_conv3x3 = len(shape) == 4 and tuple(shape[2:]) != (1, 1)
        into = conv_ranks if is_conv3x3 else ranks
        into[shape[0]] = into.get(shape[0], 0) + 1
    wrong = {rank: count for rank, count in ranks.items() if rank != (network_dim or 4)}
    if wrong:
        return msg(
            "preflight.network_weights.other_rank", "--network_weights {path}: its LoRA has rank {ranks} but this run "
            "builds rank {dim} (--network_dim), so its weights do not fit. Give the --network_dim it was trained with, "
            "or add --dim_from_weights to take the ranks from the file",
            path=path, ranks=", ".join(str(rank) for rank in sorted(ranks)), dim=network_dim or 4,
        )
    wrong_conv = {rank for rank in conv_ranks if rank != conv_dim}
    if conv_dim is not None and wrong_conv:
        return msg(
            "preflight.network_weights.other_conv_rank", "--network_weights {path}: its 3x3 convolution layers have "
            "rank {ranks} but this run builds conv_dim={dim} (--network_args), so their weights do not fit. Give the "
            "conv_dim it was trained with, or add --dim_from_weights",
            path=path, ranks=", ".join(str(rank) for rank in sorted(conv_ranks)), dim=conv_dim,
        )
    return None
