"""`--network_args "key=value" ...`: parsing, typed reading, and checking which keys a module reads.

sd-scripts hands network_args to `create_network(**kwargs)` as strings and every module reads what
it wants with `kwargs.get`, so a misspelt key (`conv_dims=8`) silently does nothing. Here:

- our own modules (`networks.lora`, `networks.dylora`) declare the keys they read; any other key
  is an error naming the nearest known key (`NetworkArgsError`);
- for other modules (`lycoris.kohya`, third-party sd-scripts modules) the keys their
  `create_network` reads are found in its source (`kwargs.get("k")`, `kwargs["k"]`, `"k" in
  kwargs`); keys it does not read produce a warning instead of vanishing. When the source cannot
  be read, or `kwargs` is handed on to other code, nothing can be known and nothing is claimed.

This module stays importable without torch (the GUI and the option validator use it).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from backend.messages import msg

# Values arrive as strings from the command line/TOML, but Python callers may pass typed values.
ArgValue = Any


class NetworkArgsError(ValueError):
    """A network_args entry that cannot be used; the message names the key and the fix."""


def parse_network_args(items: Iterable[str] | None) -> dict[str, str]:
    """Split `["conv_dim=8", "algo=lokr"]` into `{"conv_dim": "8", "algo": "lokr"}`.

    Values stay strings, exactly as sd-scripts passes them; each module converts what it reads.
    Only the first `=` splits, so values may contain `=`. A later repeat of a key wins, as in
    sd-scripts.
    """
    parsed: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NetworkArgsError(msg(
                "network.args.not_key_value", "network_args entry {item} is not of the form key=value (e.g. conv_dim=8)",
                item=repr(item),
            ))  # fmt: skip
        parsed[key] = value.strip()
    return parsed


def nearest_key(key: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_known_keys(args: Mapping[str, ArgValue], known: Iterable[str], module_name: str) -> None:
    """Raise for the first key of `args` that `module_name` does not read."""
    known = sorted(known)
    for key in args:
        if key not in known:
            hint = nearest_key(key, known)
            given = {"key": repr(key), "module": module_name, "known": ", ".join(known)}
            if hint:
                raise NetworkArgsError(msg(
                    "network.args.unknown_key_close",
                    "network_args key {key} is not read by {module}. Did you mean {close}? Known keys: {known}.",
                    close=repr(hint), **given,
                ))  # fmt: skip
            raise NetworkArgsError(msg(
                "network.args.unknown_key", "network_args key {key} is not read by {module}. Known keys: {known}.",
                **given,
            ))  # fmt: skip


class ArgReader:
    """Typed access to network_args values, with errors that name the key and the bad value."""

    def __init__(self, args: Mapping[str, ArgValue]):
        self._args = dict(args)

    def __contains__(self, key: str) -> bool:
        return self._args.get(key) not in (None, "")

    def _convert(self, key: str, convert: Callable[[Any], Any], what: Callable[[], str]) -> Any:
        value = self._args.get(key)
        if value is None or value == "":
            return None
        try:
            return convert(value)
        except (TypeError, ValueError) as err:
            raise NetworkArgsError(msg(
                "network.args.bad_value", "network_args {key}={value}: expected {what}",
                key=key, value=repr(value), what=what(),
            )) from err  # fmt: skip

    # `what`: a noun phrase for the message, made only when a value is refused.
    def text(self, key: str) -> str | None:
        return self._convert(key, str, lambda: msg("network.args.kind.text", "text"))

    def integer(self, key: str) -> int | None:
        return self._convert(key, _to_int, lambda: msg("network.args.kind.integer", "an integer"))

    def number(self, key: str) -> float | None:
        return self._convert(key, float, lambda: msg("network.args.kind.number", "a number"))

    def flag(self, key: str) -> bool | None:
        return self._convert(key, _to_bool, lambda: msg("network.args.kind.flag", "true or false"))

    def integers(self, key: str) -> list[int] | None:
        return self._convert(
            key, lambda v: [_to_int(x) for x in _split_list(v)],
            lambda: msg("network.args.kind.integers", "comma-separated integers"),
        )  # fmt: skip

    def numbers(self, key: str) -> list[float] | None:
        return self._convert(
            key, lambda v: [float(x) for x in _split_list(v)],
            lambda: msg("network.args.kind.numbers", "comma-separated numbers"),
        )  # fmt: skip


def _to_int(value: Any) -> int:
    number = float(value)
    if number != int(number):
        raise ValueError(value)
    return int(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _split_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [part.strip() for part in str(value).split(",")]


def keys_read_by(function: Callable[..., Any]) -> set[str] | None:
    """The network_args keys `function(**kwargs)` reads, or None when that cannot be known.

    Named parameters count as read. The `**kwargs` dict counts as fully understood only when every
    use of it is `.get("k")`, `.pop("k")`, `["k"]`, `"k" in kwargs` or `.items()/.keys()`; passing
    it on (`f(**kwargs)`, `f(kwargs)`) means any key might be read elsewhere.
    """
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0]
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    params = func.args
    named = {a.arg for a in params.posonlyargs + params.args + params.kwonlyargs}
    if params.kwarg is None:
        return named
    kwargs_name = params.kwarg.arg
    keys: set[str] = set()
    understood: set[int] = set()  # ids of Name nodes whose use is accounted for

    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and _is_name(node.func.value, kwargs_name)
        ):
            understood.add(id(node.func.value))
            if node.func.attr in ("get", "pop", "setdefault") and node.args:
                key = _constant_str(node.args[0])
                if key is None:
                    return None
                keys.add(key)
            elif node.func.attr not in ("items", "keys", "values"):
                return None
        elif isinstance(node, ast.Subscript) and _is_name(node.value, kwargs_name):
            understood.add(id(node.value))
            key = _constant_str(node.slice)
            if key is not None:
                keys.add(key)
            elif not isinstance(node.ctx, ast.Store):
                return None
        elif isinstance(node, ast.Compare) and any(_is_name(c, kwargs_name) for c in node.comparators):
            understood.update(id(c) for c in node.comparators if _is_name(c, kwargs_name))
            key = _constant_str(node.left)
            if key is not None:
                keys.add(key)

    for node in ast.walk(func):
        if _is_name(node, kwargs_name) and id(node) not in understood:
            return None  # kwargs escapes (passed on, aliased): its readers are elsewhere
    return named | keys


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _constant_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
