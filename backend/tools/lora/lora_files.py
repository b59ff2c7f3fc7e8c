"""Reading LoRA-family files for the tools: modules grouped by name, the algorithm, the base model
family, and each module's effective weight delta.

A module is every key sharing the part before the first "." (`lora_unet_..._to_q`), with its
parameters by suffix (`lora_down.weight`, `alpha`, `hada_w1_a`, ...). Deltas follow the formulas of
sd-scripts (LoRA/LoCon: `alpha / rank * up @ down`) and LyCORIS (LoHa: the hadamard product of two
low-rank products; LoKr: the kronecker product of two factors, either possibly low-rank), without
the user's multiplier.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from backend.families import network_files
from backend.finite_weights import check_weights
from backend.messages import msg
from backend.models.errors import ModelFileError
from backend.models.file_checks import pickle_load_error
from backend.networks.naming import text_encoder_prefixes
from backend.networks.weights_io import load_weights_file, save_weights_file
from backend.tools.cli.light_cli import ToolFailure
from backend.tools.lora.tool_cli import ToolError

LORA_PARAMS = frozenset({"lora_down.weight", "lora_up.weight", "alpha"})
LOHA_PARAMS = frozenset({"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"})
LOKR_PARAMS = frozenset({"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "alpha"})
# Other LyCORIS parameters: recognised (inspect names them), not reconstructed here.
OTHER_PARAMS: dict[str, str] = {
    "lora_mid.weight": "LoCon (Tucker)", "hada_t1": "LoHa (Tucker)", "hada_t2": "LoHa (Tucker)",
    "lokr_t2": "LoKr (Tucker)", "dora_scale": "DoRA", "diff": "Full", "diff_b": "Full",
    "weight": "IA3", "on_input": "IA3", "oft_blocks": "OFT", "oft_diag": "OFT", "rescale": "OFT",
    "a1.weight": "GLoRA", "a2.weight": "GLoRA", "b1.weight": "GLoRA", "b2.weight": "GLoRA",
}
KNOWN_PARAMS = LORA_PARAMS | LOHA_PARAMS | LOKR_PARAMS | frozenset(OTHER_PARAMS)


@dataclass
class LoraFile:
    path: str
    modules: dict[str, dict[str, torch.Tensor]]  # lora name -> {param suffix: tensor}
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        kinds = {module_algorithm(params) for params in self.modules.values()}
        if "LoCon" in kinds:  # a LoCon file is LoRA on linear layers plus 3x3 convs
            kinds.discard("LoRA")
        return "+".join(sorted(kinds))

    @property
    def family(self) -> str:
        """The model it was made for: a family, or a network layout when the file cannot tell which of
        the layout's families (`backend.families.network_files`)."""
        return lora_family(self.modules, self.metadata)


def module_algorithm(params: Mapping[str, torch.Tensor]) -> str:
    names = set(params)
    for name in sorted(names):
        if name in OTHER_PARAMS:
            return OTHER_PARAMS[name]
    if "hada_w1_a" in names:
        return "LoHa"
    if names & (LOKR_PARAMS - {"alpha"}):
        return "LoKr"
    if "lora_down.weight" in names:
        down = params["lora_down.weight"]
        return "LoCon" if down.dim() == 4 and tuple(down.shape[2:]) != (1, 1) else "LoRA"
    return "unknown"


def lora_family(modules: Mapping[str, Mapping[str, torch.Tensor]], metadata: Mapping[str, str]) -> str:
    """The family (or only the layout) of a file: its key names tell the layout, `ss_base_model_version`
    the family where it agrees with them (or settles which of the layouts they fit: a LoRA of CLIP-L
    alone is SDXL's or FLUX.1's), else the width of the first text encoder (full-size files)."""
    candidates = network_files.undecided_layouts(modules) or [network_files.image_layouts()[0]]
    by_metadata = network_files.of_base_model_version(metadata.get("ss_base_model_version"))
    if by_metadata is not None and network_files.layout_of(by_metadata) in candidates:
        return by_metadata
    layout = candidates[0]
    families = network_files.families_of(layout)
    if len(families) > 1:
        first = text_encoder_prefixes(len(families[0].text_encoder_widths))[0]
        down = modules.get(f"{first}_text_model_encoder_layers_0_self_attn_q_proj", {}).get("lora_down.weight")
        if down is not None and down.dim() == 2:
            return network_files.of_text_encoder_width(layout, int(down.shape[1]))
    return network_files.narrowest(layout, ())


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a LoRA file in any layout; a missing, damaged or unreadable file is a
    `ToolError` that names the file once (the model layer's own error already names it)."""
    if not Path(path).is_file():
        raise ToolError(msg("tool.lora_not_found", "LoRA file not found: {path}", path=path))
    try:
        return load_weights_file(path)
    except ModelFileError as exc:  # cut short, empty, not a weights file at all
        raise _unreadable(path, exc) from exc
    except Exception as exc:  # torch's unpickler and safetensors raise many types for a corrupt file
        if not str(path).lower().endswith(".safetensors"):
            raise _unreadable(path, pickle_load_error(path, exc)) from exc
        raise ToolError(msg("tool.lora_unreadable", "{path} cannot be read as a LoRA file: {error}",
                            path=path, error=f"{type(exc).__name__}: {exc}")) from exc


def _unreadable(path: str | os.PathLike[str], error: ModelFileError) -> ToolError:
    # The model layer's message starts with the path too: only its problem and fix are used here.
    return ToolError(msg("tool.lora_file_problem", "{path} cannot be read as a LoRA file: {problem}; {fix}",
                         path=path, problem=error.problem, fix=error.fix))


def load_lora(path: str | os.PathLike[str]) -> LoraFile:
    """Read a LoRA-family file; missing files and files that are not one are `ToolError`s."""
    tensors, metadata = read_weights(path)
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, param = key.partition(".")
        modules.setdefault(name, {})[param] = value
    if not any(name.startswith("lora_") for name in modules) or not any(
        set(params) & (KNOWN_PARAMS - {"alpha"}) for params in modules.values()
    ):
        if any(k.startswith(("unet.", "text_encoder")) and ("lora_A" in k or ".lora." in k) for k in tensors):
            raise ToolError(msg(
                "tool.lora_diffusers_layout", "{path} is not a LoRA file (no lora_unet_*/lora_te* modules with LoRA "
                "weights); it is in the diffusers layout: convert it first with python -m backend.tools.convert_lora",
                path=path,
            ))
        raise ToolError(msg("tool.not_a_lora", "{path} is not a LoRA file (no lora_unet_*/lora_te* modules with LoRA "
                            "weights)", path=path))
    return LoraFile(str(path), modules, metadata)


def alpha_of(params: Mapping[str, torch.Tensor], rank: int) -> float:
    alpha = params.get("alpha")
    return float(alpha.float().item()) if alpha is not None else float(rank)


def lora_rank(params: Mapping[str, torch.Tensor]) -> int:
    return int(params["lora_down.weight"].shape[0])


def lora_scale(params: Mapping[str, torch.Tensor]) -> float:
    rank = lora_rank(params)
    return alpha_of(params, rank) / rank


def _product(params: Mapping[str, torch.Tensor], full: str, a: str, b: str) -> tuple[torch.Tensor, int | None]:
    if full in params:
        return params[full].float().flatten(1) if params[full].dim() > 2 else params[full].float(), None
    up, down = params[a].float(), params[b].float()
    return up.flatten(1) @ down.flatten(1), int(down.shape[0])


def module_delta(name: str, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The weight delta the module adds at multiplier 1: LoRA/LoCon in the layer's weight shape,
    LoHa/LoKr flattened to 2-D `[out, in * kh * kw]` (reshape to the layer's weight)."""
    algorithm = module_algorithm(params)
    if algorithm in ("LoRA", "LoCon"):
        down, up = params["lora_down.weight"].float(), params["lora_up.weight"].float()
        delta = up.flatten(1) @ down.flatten(1)
        return (delta * lora_scale(params)).reshape(up.shape[0], *down.shape[1:])
    if algorithm == "LoHa":
        rank = int(params["hada_w1_b"].shape[0])
        w1 = params["hada_w1_a"].float() @ params["hada_w1_b"].float()
        w2 = params["hada_w2_a"].float() @ params["hada_w2_b"].float()
        return w1 * w2 * (alpha_of(params, rank) / rank)
    if algorithm == "LoKr":
        w1, rank1 = _product(params, "lokr_w1", "lokr_w1_a", "lokr_w1_b")
        w2, rank2 = _product(params, "lokr_w2", "lokr_w2_a", "lokr_w2_b")
        rank = rank2 or rank1
        # LyCORIS ignores alpha (scale 1) when neither factor is low-rank.
        scale = 1.0 if rank is None else alpha_of(params, rank) / rank
        return torch.kron(w1, w2) * scale
    raise ToolError(msg("tool.module_not_reconstructable", "{name}: {algorithm} modules cannot be reconstructed by "
                        "this tool (LoRA, LoCon, LoHa, LoKr can)", name=name, algorithm=algorithm))


def lora_state_dict(modules: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {f"{name}.{param}": value for name, params in modules.items() for param, value in params.items()}


def nonfinite_keys(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of the floating-point tensors holding a NaN or an infinity."""
    return check_weights(tensors).nonfinite


def check_finite_modules(modules: Mapping[str, Mapping[str, torch.Tensor]], path: str, flag: str) -> None:
    """A LoRA with NaN/inf weights (a training that diverged) gives a broken result whatever a tool does."""
    state = lora_state_dict(modules)
    bad = nonfinite_keys(state)
    if bad:
        raise ToolError(msg(
            "tool.lora_nonfinite", "{flag} {path} holds NaN or infinite values in {count} of its {total} tensors "
            "(first: {first}): the training that wrote it diverged; use an earlier checkpoint of that training",
            flag=flag, path=path, count=len(bad), total=len(state), first=bad[0],
        ))


def check_finite_lora(lora: LoraFile, flag: str) -> None:
    check_finite_modules(lora.modules, lora.path, flag)


def check_finite_result(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str], dtype: torch.dtype | None) -> None:
    """Refuse to write a result with NaN/inf weights, or weights the cast to the save precision
    `dtype` makes infinite: a `ToolFailure` naming the tensors; nothing is written under `path`."""
    problems = check_weights(state, dtype)
    if problems and problems.nonfinite:
        raise ToolFailure(msg("tool.result_nonfinite", "the result was not written to {path}: {problems}",
                              path=path, problems=problems.describe()))
    if problems:
        raise ToolFailure(msg("tool.result_overflow", "the result was not written to {path}: {problems}; save with "
                              "--save_precision float", path=path, problems=problems.describe()))


def save_lora(
    path: str | os.PathLike[str],
    modules: Mapping[str, Mapping[str, torch.Tensor]],
    metadata: Mapping[str, str],
    dtype: torch.dtype | None,
) -> None:
    """Atomic write (alphas stay float32 scalars, as sd-scripts saves them); sshs hashes recomputed.
    A result with NaN/inf weights is refused (`check_finite_result`)."""
    state = lora_state_dict(modules)
    check_finite_result(state, path, dtype)
    if dtype is not None:
        state = {k: v if k.endswith(".alpha") else v.to(dtype) for k, v in state.items()}
    clean = {k: v for k, v in metadata.items() if k not in ("sshs_model_hash", "sshs_legacy_hash")}
    save_weights_file(path, state, None, clean)


def lora_module(up: torch.Tensor, down: torch.Tensor, alpha: float) -> dict[str, torch.Tensor]:
    return {"lora_down.weight": down.contiguous(), "lora_up.weight": up.contiguous(), "alpha": torch.tensor(float(alpha))}
