"""Rooms take what they read (issue 16): backend/training's rooms get typed slices of the options
(`OptionSlice` dataclasses), not the parsed namespace. Read with `ast`, nothing imported.

Two checks: every slice is a frozen dataclass whose fields are declared options (so `from_args`
copies real options, under their own names), and only the callables listed in WHOLE_NAMESPACE, each
with its reason, still receive the whole namespace (a parameter `args` or annotated `Namespace`, or a
read of `run.args` / `self.args`). A new one fails here, and so does an entry that no longer applies.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from backend.options.schema import all_options

TRAINING = Path(__file__).resolve().parents[2] / "backend" / "training"

PREFLIGHT = "preflight: checks the options against each other and against the files, before any room is built"
METADATA = "the metadata writer: records dozens of options under their own names (ss_*, modelspec.*)"
PLUGIN = ("sd-scripts' network plug-in interface: a module's optional prepare_network(args) takes the whole "
          "namespace, handed on unread")

# Callables ("module.function", "module.Class.method") or whole modules ("module") that take the namespace.
WHOLE_NAMESPACE = {
    "preflight": PREFLIGHT,
    "finetune_preflight": PREFLIGHT,
    "leco_preflight": PREFLIGHT,
    "embedding_preflight": PREFLIGHT,
    "memory_preflight.memory_check": PREFLIGHT + " (the memory planner sizes a run from every option that can change it)",
    "output_space.written_folders": PREFLIGHT,
    "output_space.finetune_save_sizes": PREFLIGHT,
    "output_space.output_problems": PREFLIGHT,
    "sharded.launch_problems": PREFLIGHT,
    "metadata.training_metadata": METADATA,
    "metadata.modelspec_metadata": METADATA,
    "metadata.recorded_network_args": METADATA,
    "run_metadata.run_metadata": METADATA + " (TrainingRun.args is kept for it alone)",
    "run_setup.build_run": "the composer: it slices the options for every room it builds",
    "trackers.logged_config": "--log_config: sd-scripts logs every option of the run to the trackers",
    "run_setup.prepare_method": PLUGIN,
    "network_method.NetworkTraining.__init__": PLUGIN,
    "method_options.method_config": "a slicer: the training method's slice, chosen by the command",
}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(TRAINING.glob("*.py")):
        yield path.stem, ast.parse(path.read_text(encoding="utf-8"))


def _callables(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield from _callables(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{child.name}", child  # functions nested in it count as its own reads


def _takes_namespace(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    if function.name == "from_args":  # the slicers themselves
        return False
    arguments = function.args
    for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
        if argument.arg == "args" or (argument.annotation is not None and "Namespace" in ast.unparse(argument.annotation)):
            return True
    return any(isinstance(node, ast.Attribute) and node.attr == "args"
               and ast.unparse(node.value) in ("run", "self", "self.run") for node in ast.walk(function))


def namespace_takers() -> set[str]:
    return {f"{module}.{name}" for module, tree in _modules() for name, function in _callables(tree, "")
            if _takes_namespace(function)}


def _allowed(name: str) -> str | None:
    module = name.partition(".")[0]
    return WHOLE_NAMESPACE.get(name) or WHOLE_NAMESPACE.get(module)


def test_only_the_listed_callables_take_the_whole_namespace() -> None:
    takers = namespace_takers()
    unlisted = sorted(name for name in takers if _allowed(name) is None)
    assert not unlisted, (
        f"these take the whole option namespace: {unlisted}. Give the room a slice of the options it reads "
        "(a frozen `OptionSlice` dataclass, option_slice.py) and build it where the run is composed, or list it "
        "in WHOLE_NAMESPACE with the reason it needs every option"
    )
    modules = {name.partition(".")[0] for name in takers}
    stale = sorted(key for key in WHOLE_NAMESPACE if key not in takers and key not in modules)
    assert not stale, f"WHOLE_NAMESPACE lists what no longer takes the namespace: {stale}"


def _slices() -> Iterator[tuple[str, ast.ClassDef]]:
    for module, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(ast.unparse(base) == "OptionSlice" for base in node.bases):
                yield f"{module}.{node.name}", node


def test_every_slice_is_a_frozen_dataclass_of_declared_options() -> None:
    options = all_options()
    slices = dict(_slices())
    assert len(slices) >= 10, sorted(slices)  # the scan finds them (at the time of writing: 15)
    for name, node in slices.items():
        assert any("dataclass(frozen=True)" in ast.unparse(d) for d in node.decorator_list), f"{name} is not frozen"
        fields = [statement.target.id for statement in node.body
                  if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)]
        assert fields, name
        unknown = [field for field in fields if field not in options]
        assert not unknown, f"{name}: {unknown} are not options; a slice's fields are named as the options it reads"
