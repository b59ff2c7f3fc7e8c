"""The LoRA tab's network selector: network type -> `network_module` + the `network_args` that apply.

Type names are kohya_ss's (as `gui/kohya_import/network.py` produces them), so imported configs
select the same entry. Each type lists the network_args fields it shows; `compose` turns the
fields into `network_args` and `decompose` does the reverse when a preset or config is loaded
(entries no field covers stay in the free-text "extra" list, so nothing is lost).

The keys themselves (value type, which module reads them) are declared once, torch-free, in
backend/networks/arg_keys.py, which our network modules read too; here each type only picks the
keys it shows, and the import fails if it picks one its module does not read.

Pure data and string handling: no gradio, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.networks.arg_keys import DYLORA, LORA, LYCORIS, NETWORK_ARG_KEYS, NetworkArgKey
from backend.networks.arg_keys import LYCORIS_PRESETS as LYCORIS_PRESETS  # the preset names the tab offers
from backend.networks.args import parse_network_args

LYCORIS_MODULE = LYCORIS
NetworkArg = NetworkArgKey  # a field of the LoRA tab: one declared network_args key


@dataclass(frozen=True)
class NetworkType:
    name: str
    module: str
    algo: str | None  # LyCORIS `algo=`; None for our own modules
    args: tuple[str, ...]  # NETWORK_ARGS shown for this type


_LYCORIS_COMMON = ("preset", "conv_dim", "conv_alpha", "rank_dropout", "module_dropout", "train_norm")
_LYCORIS_LORA = (*_LYCORIS_COMMON, "use_tucker", "use_scalar", "dora_wd", "bypass_mode")

NETWORK_TYPES: dict[str, NetworkType] = {
    t.name: t
    for t in (
        NetworkType("Standard", LORA, None, ("rank_dropout", "module_dropout")),
        NetworkType("LoCon", LORA, None, ("conv_dim", "conv_alpha", "rank_dropout", "module_dropout")),
        NetworkType("DyLoRA", DYLORA, None, ("unit", "conv_dim", "conv_alpha")),
        NetworkType("LyCORIS/LoCon", LYCORIS_MODULE, "locon", _LYCORIS_LORA),
        NetworkType("LyCORIS/LoHa", LYCORIS_MODULE, "loha", _LYCORIS_LORA),
        NetworkType("LyCORIS/LoKr", LYCORIS_MODULE, "lokr", (*_LYCORIS_LORA, "factor", "decompose_both", "full_matrix")),
        NetworkType("LyCORIS/iA3", LYCORIS_MODULE, "ia3", ("preset", "train_on_input")),
        NetworkType("LyCORIS/DyLoRA", LYCORIS_MODULE, "dylora", (*_LYCORIS_COMMON, "block_size", "use_tucker")),
        NetworkType("LyCORIS/GLoRA", LYCORIS_MODULE, "glora", (*_LYCORIS_COMMON, "use_tucker")),
        NetworkType("LyCORIS/Diag-OFT", LYCORIS_MODULE, "diag-oft", (*_LYCORIS_COMMON, "constraint", "rescaled")),
        NetworkType("LyCORIS/BOFT", LYCORIS_MODULE, "boft", (*_LYCORIS_COMMON, "constraint", "rescaled")),
        NetworkType("LyCORIS/Native Fine-Tuning", LYCORIS_MODULE, "full", ("preset", "rank_dropout", "module_dropout", "train_norm")),
    )
}  # fmt: skip


def _unread(kind: NetworkType) -> list[str]:
    return [name for name in kind.args if kind.module not in getattr(NETWORK_ARG_KEYS.get(name), "modules", ())]


_UNREAD = {name: _unread(kind) for name, kind in NETWORK_TYPES.items() if _unread(kind)}
if _UNREAD:  # a field the module would refuse (ours) or ignore (LyCORIS): fix the type or arg_keys.py
    raise ValueError(f"network types show keys their module does not read: {_UNREAD}")
# The fields of the tab: every key some type shows, in the declaration's order.
NETWORK_ARGS: dict[str, NetworkArg] = {
    name: key for name, key in NETWORK_ARG_KEYS.items() if any(name in kind.args for kind in NETWORK_TYPES.values())
}
DEFAULT_TYPE = "Standard"
# kohya_ss's name for a conv-enabled networks.lora; with conv_dim set, "Standard" is shown as this.
_CONV_ARGS = ("conv_dim", "conv_alpha")


def _arg_text(arg: NetworkArg, value: Any) -> str | None:
    """The `key=value` value text, or None when the field is not set (bools: only True is written,
    because LyCORIS reads some flags with a plain truth test, where "False" would mean on)."""
    if value is None or value == "" or value is False:
        return None
    if arg.kind == "bool":
        return "True"
    if arg.kind in ("int", "float"):
        try:
            number = float(str(value).strip())
        except ValueError:
            return str(value).strip()  # as typed: the trainer's check names the key and the value
        if arg.kind == "int" or number.is_integer():
            return str(int(number))  # LyCORIS reads conv_dim with int(): "8", never "8.0"
        return str(number)
    return str(value)


def field_text(name: str, value: Any) -> str:
    """A field's value as its text box shows it: as `compose` writes it (conv_alpha 4.0 -> "4")."""
    return _arg_text(NETWORK_ARGS[name], value) or ""


def compose(network_type: str, fields: Mapping[str, Any], extra: Sequence[str] = ()) -> tuple[str, list[str]]:
    """(`network_module`, `network_args`) for `network_type` with the shown `fields` and `extra` entries."""
    kind = NETWORK_TYPES[network_type]
    args = [f"algo={kind.algo}"] if kind.algo else []
    for name in kind.args:
        text = _arg_text(NETWORK_ARGS[name], fields.get(name))
        if text is not None:
            args.append(f"{name}={text}")
    return kind.module, [*args, *extra]


def _field_value(arg: NetworkArg, text: str) -> Any:
    if arg.kind == "bool":
        return text.strip().lower() in ("true", "1", "yes")
    if arg.kind == "int":
        return int(float(text))
    if arg.kind == "float":
        return float(text)
    return text


@dataclass
class Decomposed:
    network_type: str
    fields: dict[str, Any]
    extra: list[str]  # entries no field of the type covers, kept as written


def as_the_tab_writes(
    network_module: str | None, network_args: Sequence[str] | None, network_type: str | None = None
) -> tuple[str, str, list[str]]:
    """(network type, `network_module`, `network_args`) as the LoRA tab would write a module + args:
    its fields in its order, False flags left out, entries no field covers kept as written. Loading
    the result into the tab and reading it back gives the same three values. A module no type offers
    (a third-party network) is kept with its args untouched."""
    if not any(kind.module == (network_module or "networks.lora") for kind in NETWORK_TYPES.values()):
        return DEFAULT_TYPE, str(network_module), list(network_args or ())
    split = decompose(network_module, network_args, network_type)
    module, args = compose(split.network_type, split.fields, split.extra)
    return split.network_type, module, args


def decompose(network_module: str | None, network_args: Sequence[str] | None, network_type: str | None = None) -> Decomposed:
    """Which type and field values a module + args describe (the inverse of `compose`).

    `network_type` (saved in presets) wins when it agrees with the module; otherwise the type is
    read from the module and `algo=`. Unknown modules keep the Standard type with all args as extra.
    """
    module = network_module or "networks.lora"
    items = list(network_args or ())
    parsed = parse_network_args(items)
    algo = parsed.get("algo", "lora" if module == LYCORIS_MODULE else None)
    algo = "locon" if algo == "lora" else algo
    if network_type not in NETWORK_TYPES or NETWORK_TYPES[network_type].module != module:
        matches = [t for t in NETWORK_TYPES.values() if t.module == module and t.algo == algo]
        network_type = matches[0].name if matches else DEFAULT_TYPE
        if network_type == "Standard" and any(name in parsed for name in _CONV_ARGS):
            network_type = "LoCon"
    kind = NETWORK_TYPES[network_type]
    fields: dict[str, Any] = {}
    extra: list[str] = []
    for item in items:
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "algo" and kind.algo:
            continue
        if key in kind.args and key in NETWORK_ARGS:
            try:
                fields[key] = _field_value(NETWORK_ARGS[key], value.strip())
                continue
            except ValueError:
                pass  # an unreadable value stays visible as written
        extra.append(item)
    return Decomposed(network_type, fields, extra)
