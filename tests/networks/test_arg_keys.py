"""network_args keys have one source (backend/networks/arg_keys.py): our network modules and the LoRA
tab read it, and nothing else lists the keys or their value types."""

from __future__ import annotations

import ast

import pytest

from backend.networks import arg_keys, dylora, lora
from backend.networks.arg_keys import DYLORA, LORA, NETWORK_ARG_KEYS, keys_read_by
from gui.training.network_types import NETWORK_ARGS, NETWORK_TYPES, NetworkType, _unread, compose, decompose
from tests.end_to_end.helpers import REPO

READERS = (
    "backend/networks/lora.py", "backend/networks/dylora.py", "gui/training/network_types.py",
    "backend/networks/loader.py", "backend/training/resume_check.py", "gui/kohya_import/network.py",
)  # fmt: skip
# kohya_ss's own choices (which fields it passes for a type) are kohya_ss's lists, not ours.
PICKS_BY_NAME = ("gui/training/network_types.py", "gui/kohya_import/network.py")


def test_our_modules_read_the_declared_keys() -> None:
    assert set(lora.KNOWN_KEYS) == set(keys_read_by(LORA)) and len(lora.KNOWN_KEYS) == len(set(lora.KNOWN_KEYS))
    assert keys_read_by(LORA, "shape") == lora.DIM_KEYS
    assert set(dylora.KNOWN_KEYS) == set(keys_read_by(DYLORA))
    assert {"conv_dim", "block_dims", "conv_block_alphas"} <= set(lora.DIM_KEYS)
    assert {"unit", "conv_dim"} <= set(dylora.KNOWN_KEYS) and "unit" not in lora.KNOWN_KEYS


def test_the_lora_tabs_fields_are_the_declared_keys() -> None:
    assert all(NETWORK_ARGS[name] is NETWORK_ARG_KEYS[name] for name in NETWORK_ARGS)
    for network_type in NETWORK_TYPES.values():
        assert _unread(network_type) == [], network_type.name
    # A type showing a key its module does not read is caught (at import of gui.training.network_types).
    assert _unread(NetworkType("Standard", LORA, None, ("unit", "rank_dropout"))) == ["unit"]
    assert decompose(*compose("DyLoRA", {"unit": "4", "conv_dim": 8})).fields == {"unit": 4, "conv_dim": 8}


def _listed_keys(tree: ast.AST) -> list[str]:
    """Names assigned a literal tuple/list/set of two or more declared key names (a second list of keys)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Tuple | ast.List | ast.Set):
            words = [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(words) >= 2 and all(word in NETWORK_ARG_KEYS for word in words):
                found.append(ast.unparse(node)[:60])
    return found


@pytest.mark.parametrize("path", READERS)
def test_no_reader_lists_keys_of_its_own(path: str) -> None:
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    declared_here = [
        ast.unparse(node)[:60] for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("NetworkArg", "NetworkArgKey")
    ]  # fmt: skip
    assert declared_here == []
    if path not in PICKS_BY_NAME:  # the tab's types pick the keys they show by name (checked above)
        assert _listed_keys(tree) == []


def test_the_named_groups_are_declared_keys() -> None:
    assert set(arg_keys.PER_BLOCK_KEYS) <= set(keys_read_by(LORA)) - set(keys_read_by(arg_keys.LYCORIS))
    assert arg_keys.LORAPLUS_KEYS == ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
    # Which keys a resume may change: tests/training/test_output_safety.py (run_record).


def test_the_source_is_light() -> None:
    source = (REPO / "backend" / "networks" / "arg_keys.py").read_text(encoding="utf-8")
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {"__future__", "dataclasses", "typing"}, imported
    assert arg_keys.LYCORIS_PRESETS[0] == "full"
