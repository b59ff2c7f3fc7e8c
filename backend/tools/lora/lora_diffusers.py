"""The diffusers/PEFT LoRA layout, read into and written from sd-scripts-layout modules.

What diffusers writes (`save_lora_weights`, its training scripts): `<component>.<path>.lora_A.weight`
(sd-scripts' `lora_down`) and `.lora_B.weight` (`lora_up`), components `unet`, `text_encoder`,
`text_encoder_2`. There is no alpha tensor: the scale is PEFT's, `lora_alpha / r` per module
(`lora_alpha / sqrt(r)` with `use_rslora`), taken from the `lora_adapter_metadata` safetensors
metadata key (JSON of each component's LoraConfig fields, keys `"<component>.<field>"`; modules
that differ go in `rank_pattern`/`alpha_pattern`, matched as PEFT matches them: a pattern is a
suffix of the module path). A file without that metadata means scale 1 (alpha = rank), which is
what diffusers assumes when it loads one.

Also read, as older diffusers wrote them: `<path>.lora.down.weight`/`.lora.up.weight`,
`<path>.lora_linear_layer.down/up.weight` (text encoders), attention-processor keys
(`attn1.processor.to_q_lora.down.weight`, `to_out_lora` for `to_out.0`, with or without the `unet.`
prefix) and network-alpha tensors `<path>.alpha`.

Conversions keep the tensors as they are (PEFT's lora_A/lora_B have exactly the shapes of
lora_down/lora_up, convs included) and carry each module's alpha: sd-scripts -> diffusers writes it
into `lora_adapter_metadata`; diffusers -> sd-scripts writes `alpha = scale * rank` as a scalar in
the module's weight dtype (how the trainer saves it). A round trip therefore gives back the same
keys and the same tensor bytes. DoRA (`lora_magnitude_vector`/`dora_scale`), LoRA biases and
LyCORIS algorithms have no counterpart in the other layout and are refused.

Text-encoder paths keep transformers 4's `text_model.` prefix in keys (what the files in the wild
have; diffusers strips it when the loaded CLIPTextModel is a transformers 5 one), while PEFT
patterns are written without it, so they match the module under either transformers version.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from backend.families import network_files
from backend.messages import msg
from backend.networks.swapped import swap_halves
from backend.tools.lora.lora_diffusers_names import NameTable, layouts_of_keys, name_table
from backend.tools.lora.lora_files import lora_module
from backend.tools.lora.tool_cli import ToolError

ADAPTER_METADATA_KEY = "lora_adapter_metadata"
COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
_UNET_ROOTS = ("down_blocks.", "mid_block.", "up_blocks.", "conv_in", "conv_out", "time_embedding.", "add_embedding.")
_PEFT_DEFAULT_ALPHA = 8.0  # LoraConfig's default lora_alpha, used when metadata gives r but no alpha
_PROCESSOR = re.compile(r"^(?P<path>.+)\.processor\.(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<kind>down|up)\.weight$")
_PEFT = re.compile(r"^(?P<path>.+)\.lora_(?P<ab>[AB])(?:\.[\w-]+)?\.weight$")
_OLD = re.compile(r"^(?P<path>.+)\.(?:lora|lora_linear_layer)\.(?P<kind>down|up)\.weight$")
_REFUSED = ("lora_magnitude_vector", "lora_embedding", ".bias")
_FLAT_CLIP = ("encoder.layers.", "embeddings.", "final_layer_norm")  # CLIP paths without `text_model.` (T5's differ)


def _refused_why(marker: str) -> str:
    if marker == "lora_magnitude_vector":
        return msg("tool.diffusers_dora", "DoRA (lora_magnitude_vector) has no sd-scripts LoRA counterpart")
    if marker == "lora_embedding":
        return msg("tool.diffusers_embedding", "LoRA on embeddings has no sd-scripts counterpart")
    return msg("tool.diffusers_bias", "LoRA biases have no sd-scripts counterpart")


@dataclass
class DiffusersModule:
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None  # None: from the adapter metadata, else the rank


def is_diffusers_layout(keys: list[str]) -> bool:
    if any(key.startswith(("lora_unet_", "lora_te")) for key in keys):
        return False
    return any(_PEFT.match(k) or _OLD.match(k) or _PROCESSOR.match(k) for k in keys)


def _split_component(key: str) -> tuple[str, str]:
    head, _, rest = key.partition(".")
    if head in COMPONENTS:
        return head, rest
    if key.startswith(_UNET_ROOTS):  # attention processors saved without the component prefix
        return "unet", key
    raise ToolError(msg("tool.diffusers_unknown_component", "key {key} belongs to no known component ({components})",
                        key=repr(key), components=", ".join(COMPONENTS)))


def module_key(component: str, path: str) -> str:
    if component.startswith("text_encoder") and path.startswith(_FLAT_CLIP):
        path = f"text_model.{path}"  # written under transformers 5, which flattened CLIPTextModel
    return f"{component}.{path}"


def parse_keys(tensors: Mapping[str, torch.Tensor], source: str) -> dict[str, DiffusersModule]:
    """{"<component>.<path>": module}; alphas only where the file has alpha tensors."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    alphas: dict[str, float] = {}
    for key, value in tensors.items():
        for marker in _REFUSED:
            if marker in key and (marker != ".bias" or "lora_B" in key or ".up." in key):
                raise ToolError(f"{source}: {key}: {_refused_why(marker)}")
        if key.endswith(".alpha"):
            component, path = _split_component(key[: -len(".alpha")])
            alphas[module_key(component, path.removesuffix(".lora"))] = float(value.float().item())
            continue
        if match := _PROCESSOR.match(key):
            path, kind = f"{match['path']}.{match['proj']}".replace(".to_out", ".to_out.0"), match["kind"]
        elif match := _PEFT.match(key):
            path, kind = match["path"], "down" if match["ab"] == "A" else "up"
        elif match := _OLD.match(key):
            path, kind = match["path"], match["kind"]
        else:
            raise ToolError(msg("tool.diffusers_key_unknown", "{path}: key {key} is not a LoRA weight of the diffusers "
                                "layout", path=source, key=repr(key)))
        component, rest = _split_component(path)
        parts.setdefault(module_key(component, rest), {})[kind] = value
    modules = {}
    for key, found in parts.items():
        if set(found) != {"down", "up"}:
            raise ToolError(msg("tool.diffusers_half_module", "{path}: {key} has only its {which} weight; the file is "
                                "incomplete", path=source, key=key, which="/".join(found)))
        modules[key] = DiffusersModule(found["down"], found["up"], alphas.get(key))
    return modules


def _adapter_configs(metadata: Mapping[str, str], source: str) -> dict[str, dict]:
    raw = metadata.get(ADAPTER_METADATA_KEY)
    if not raw:
        return {}
    try:
        flat = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolError(msg("tool.diffusers_adapter_metadata_invalid", "{path}: lora_adapter_metadata is not valid JSON "
                            "({error})", path=source, error=exc)) from exc
    configs: dict[str, dict] = {}
    for key, value in flat.items():
        component, _, field = key.partition(".")
        configs.setdefault(component, {})[field] = value
    return configs


def _pattern_value(patterns: Mapping[str, float], path: str) -> float | None:
    for variant in (path, path.removeprefix("text_model.")):
        for pattern, value in patterns.items():
            if re.match(rf"(.*\.)?({pattern})$", variant):
                return float(value)
    return None


def resolve_alphas(modules: dict[str, DiffusersModule], metadata: Mapping[str, str], source: str) -> None:
    """Fill each module's alpha (sd-scripts meaning: scale = alpha / rank) from PEFT's config."""
    configs = _adapter_configs(metadata, source)
    for key, module in modules.items():
        if module.alpha is not None:
            continue
        rank = int(module.down.shape[0])
        component, _, path = key.partition(".")
        config = configs.get(component)
        if config is None:
            module.alpha = float(rank)
            continue
        if config.get("use_dora"):
            raise ToolError(msg("tool.diffusers_use_dora", "{path}: {component} is DoRA (use_dora), which has no "
                                "sd-scripts LoRA counterpart", path=source, component=component))
        alpha = _pattern_value(config.get("alpha_pattern") or {}, path)
        if alpha is None:
            alpha = float(config.get("lora_alpha", _PEFT_DEFAULT_ALPHA))
        scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
        module.alpha = scale * rank


def to_sd_scripts(
    modules: Mapping[str, DiffusersModule], table: NameTable, source: str
) -> dict[str, dict[str, torch.Tensor]]:
    missing = sorted(key for key in modules if key not in table.to_lora and key not in table.member_of)
    if missing:
        raise _not_layers(source, missing, table)
    _check_unambiguous((table.to_lora[key] for key in modules if key in table.to_lora), table, source)
    out = {}
    for key, module in modules.items():
        if key in table.member_of:
            continue
        alpha = module.alpha if module.alpha is not None else float(module.down.shape[0])
        name = table.to_lora[key]
        up = swap_halves(module.up) if name in table.swapped else module.up  # files: the original's rows
        converted = lora_module(up, module.down, alpha)
        converted["alpha"] = converted["alpha"].to(module.down.dtype)
        out[name] = converted
    for name, members in table.fused.items():
        parts = [(modules.get(key), rows) for key, rows in members]
        present = [(part, rows) for part, rows in parts if part is not None]
        if present:
            # rows in the file's model's size (a smaller model of the family keeps the proportions)
            size, full = int(present[0][0].up.shape[0]), present[0][1]
            out[name] = _fused_module([(part, rows * size // full) for part, rows in parts])
    return out


def _alpha(module: DiffusersModule) -> float:
    return module.alpha if module.alpha is not None else float(module.down.shape[0])


def _fused_module(parts: list[tuple[DiffusersModule | None, int]]) -> dict[str, torch.Tensor]:
    """One sd-scripts module over a fused layer from the LoRAs of its members (None: a member without one).

    Members sharing one lora_A and one alpha (what this tool writes from an sd-scripts file) give back
    that module exactly: lora_down = A, lora_up = the B's stacked. Otherwise (diffusers training gives each
    member its own A) the module is block-diagonal, as sd-scripts' split_qkv saves: lora_down = the A's
    stacked, lora_up = each B scaled by its member's alpha/rank in its own rows and columns, alpha = the
    total rank; a member without a LoRA gets zero rows."""
    present = [module for module, _ in parts if module is not None]
    first = present[0]
    shared = len(present) == len(parts) and all(
        torch.equal(m.down, first.down) and _alpha(m) == _alpha(first) for m in present)
    if shared:
        converted = lora_module(torch.cat([m.up for m in present]), first.down, _alpha(first))
        converted["alpha"] = converted["alpha"].to(first.down.dtype)
        return converted
    rank = sum(int(m.down.shape[0]) for m in present)
    dtype = first.up.dtype
    up = torch.zeros(sum(rows for _, rows in parts), rank, dtype=dtype)
    row = column = 0
    for module, rows in parts:
        if module is not None:
            r = int(module.down.shape[0])
            up[row:row + rows, column:column + r] = module.up.float() * (_alpha(module) / r)
            column += r
        row += rows
    down = torch.cat([m.down for m in present])
    converted = lora_module(up, down, float(rank))
    converted["alpha"] = converted["alpha"].to(down.dtype)
    return converted


def _check_unambiguous(names: Iterable[str], table: NameTable, source: str) -> None:
    found = sorted(set(names) & table.ambiguous)
    if found:
        raise ToolError(msg(
            "tool.diffusers_ambiguous_rows", "{path}: the row order of {name} differs between the models of {model} "
            "(it is the last block's in one of them); pass --model_type to name the model", path=source,
            name=found[0], model=table.label,
        ))  # fmt: skip


def _not_layers(source: str, missing: list[str], table: NameTable) -> ToolError:
    return ToolError(msg(
        "tool.diffusers_not_layers", "{path}: {count} modules are not layers of {model}, for example {first}; check "
        "--model_type", path=source, count=len(missing), model=table.label, first=missing[0],
    ))


def _pattern_path(key: str) -> str:
    component, _, path = key.partition(".")
    return path.removeprefix("text_model.") if component.startswith("text_encoder") else path


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def from_sd_scripts(
    modules: Mapping[str, Mapping[str, torch.Tensor]], table: NameTable, source: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(diffusers-layout tensors, {"lora_adapter_metadata": ..., "format": "pt"})."""
    missing = sorted(name for name in modules if name not in table.to_diffusers and name not in table.fused)
    if missing:
        raise _not_layers(source, missing, table)
    _check_unambiguous(modules, table, source)
    tensors: dict[str, torch.Tensor] = {}
    per_component: dict[str, dict[str, tuple[int, float]]] = {}
    for name, params in modules.items():
        extra = sorted(set(params) - {"lora_down.weight", "lora_up.weight", "alpha"})
        if extra or "lora_down.weight" not in params:
            what = ", ".join(extra) or msg("tool.diffusers_no_down", "no lora_down.weight")
            raise ToolError(msg("tool.diffusers_not_plain_lora", "{path}: {name} ({what}) is not a plain LoRA/LoCon "
                                "module; only those have a diffusers/PEFT LoRA layout", path=source, name=name, what=what))
        down, up = params["lora_down.weight"], params["lora_up.weight"]
        if name in table.swapped:  # diffusers' layer has the output halves the other way round
            up = swap_halves(up)
        rank = int(down.shape[0])
        alpha = float(params["alpha"].float().item()) if "alpha" in params else float(rank)
        # A fused layer: each member gets the shared lora_A and its rows of lora_B (a copy each: one
        # safetensors file cannot hold a tensor twice).
        members = _member_rows(table.fused.get(name), table.to_diffusers.get(name, ""), int(up.shape[0]))
        if members is None:
            expected = table.fused[name]
            raise ToolError(msg(
                "tool.diffusers_fused_rows", "{path}: {name} has {rows} output rows, which do not split over the "
                "layers it stands for ({layers}) as the model's do ({expected}); check --model_type", path=source,
                name=name, rows=int(up.shape[0]), layers=", ".join(key for key, _ in expected),
                expected=" + ".join(str(rows) for _, rows in expected),
            ))  # fmt: skip
        row = 0
        for key, rows in members:
            tensors[f"{key}.lora_A.weight"] = down if len(members) == 1 else down.clone()
            tensors[f"{key}.lora_B.weight"] = up if len(members) == 1 else up[row:row + rows].clone()
            row += rows
            per_component.setdefault(key.partition(".")[0], {})[_pattern_path(key)] = (rank, alpha)
    flat: dict[str, object] = {}
    for component, entries in per_component.items():
        rank = collections.Counter(r for r, _ in entries.values()).most_common(1)[0][0]
        alpha = collections.Counter(a for _, a in entries.values()).most_common(1)[0][0]
        flat[f"{component}.r"] = rank
        flat[f"{component}.lora_alpha"] = _number(alpha)
        flat[f"{component}.rank_pattern"] = {p: r for p, (r, _) in entries.items() if r != rank}
        flat[f"{component}.alpha_pattern"] = {p: _number(a) for p, (_, a) in entries.items() if a != alpha}
        flat[f"{component}.target_modules"] = sorted(entries)
    return tensors, {ADAPTER_METADATA_KEY: json.dumps(flat, sort_keys=True), "format": "pt"}


def _member_rows(fused: tuple[tuple[str, int], ...] | None, key: str,
                 rows: int) -> tuple[tuple[str, int], ...] | None:
    """The member keys of a module with their rows; a fused layer's rows in the full-size model's
    proportions (a smaller model of the family splits the same way: q, k, v equal, FLUX.1's MLP 4x),
    None when they do not divide."""
    if not fused:
        return ((key, rows),)
    total = sum(part for _, part in fused)
    if (rows * fused[0][1]) % total:
        return None
    scaled = tuple((member, rows * part // total) for member, part in fused)
    return scaled if sum(part for _, part in scaled) == rows else None


def diffusers_family(modules: Mapping[str, DiffusersModule], metadata: Mapping[str, str]) -> str | None:
    """The model a file was made for (`network_files`: a family, or a layout when the file cannot tell
    which of its families), or None (cannot tell). The layers it touches tell the layout (parts only
    one layout's models have: SDXL's second text encoder and attention in up_blocks.0, SD 1.x/2.x's
    attention in down_blocks.0 and fourth level); `ss_base_model_version` or the widths tell the
    family inside it (SD 1.x and 2.x: 768 / 1024)."""
    found = layouts_of_keys(modules)
    by_metadata = network_files.of_base_model_version(metadata.get("ss_base_model_version"))
    if not found and by_metadata is None:
        found = layouts_covering(modules)
    if len(found) > 1:
        raise ToolError(msg("tool.diffusers_mixed_layouts", "the file has layers of {models}; it is not one model's "
                            "LoRA", models=network_files.joined_labels(found, msg("tool.word_and", "and"))))
    if not found:
        return by_metadata
    layout = found[0]
    if by_metadata is not None and network_files.fits(layout, by_metadata):
        return by_metadata
    return _family_by_width(layout, modules)


def layouts_covering(modules: Mapping[str, DiffusersModule]) -> list[str]:
    """When no layer is of one layout's own parts (names FLUX.1 and SD 3.5 share, SDXL's and SD 3.5's CLIP-G):
    the one layout whose full-size layers hold every module at its width (a fused layer's member rows);
    none when several do (shared parts alone tell nothing: --model_type names the model)."""
    covering = []
    for layout in network_files.image_layouts():
        table = name_table(layout)
        if not all(key in table.to_lora or key in table.member_of for key in modules):
            continue
        rows = {key: part for members in table.fused.values() for key, part in members}
        if all(int(module.up.shape[0]) == rows[key] for key, module in modules.items() if key in rows):
            covering.append(layout)
    return covering if len(covering) == 1 else []


def _family_by_width(layout: str, modules: Mapping[str, DiffusersModule]) -> str:
    """The first text encoder's width (its first layer's query projection) or else the U-Net's
    cross-attention width (a key projection of cross-attention) tells a layout's family."""
    folder = network_files.families_of(layout)[0].text_encoder_folders[0]
    text_encoder = modules.get(f"{folder}.text_model.encoder.layers.0.self_attn.q_proj")
    if text_encoder is not None:
        return network_files.of_text_encoder_width(layout, int(text_encoder.down.shape[1]))
    for key, module in modules.items():
        if key.startswith("unet.") and key.endswith(".attn2.to_k"):
            return network_files.of_cross_attention_width(layout, int(module.down.shape[1]))
    return network_files.narrowest(layout, ())
