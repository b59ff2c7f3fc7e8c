"""Load and validate a `--dataset_config` file (.toml or .json) in sd-scripts' format.

The file:

    [general]                 keys for every dataset and subset below
    [[datasets]]              one dataset: resolution, batch size, buckets, ...
      [[datasets.subsets]]    one image source: a folder (DreamBooth), a metadata JSON
                              (fine-tuning) or a folder + conditioning folder (ControlNet)

`load_dataset_config` returns plain frozen dataclasses:

    DatasetGroupConfig(path: str, datasets: tuple[DatasetConfig, ...])
    DatasetConfig(kind: str, params: dict, subsets: tuple[SubsetConfig, ...])
        kind    "dreambooth" | "fine_tuning" | "controlnet"
        params  whole-dataset keys (resolution as a (width, height) tuple, batch_size,
                enable_bucket, ...), each resolved dataset -> [general]
    SubsetConfig(kind: str, params: dict)
        params  subset keys (image_dir, num_repeats, caption_extension, ...), each resolved
                subset -> dataset -> [general]

A key set nowhere is absent from `params`: the caller fills it from the command-line options
last, as sd-scripts does. Every problem is collected and raised as one `OptionError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.options.dataset_keys import (
    CONTROLNET,
    DATASET,
    DATASET_KEYS,
    DREAMBOOTH,
    FINE_TUNING,
    GENERAL,
    KIND_LABELS,
    SUBSET,
    SUBSET_KINDS,
)
from backend.options.dataset_messages import placement_problem, top_level_problem
from backend.options.errors import OptionError
from backend.options.toml_lines import (
    TablePath,
    TomlSyntaxError,
    escaped_path_problem,
    key_lines,
    load_toml,
    read_toml_text,
)
from backend.options.values import from_value


@dataclass(frozen=True)
class SubsetConfig:
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class DatasetConfig:
    kind: str
    params: dict[str, Any]
    subsets: tuple[SubsetConfig, ...]


@dataclass(frozen=True)
class DatasetGroupConfig:
    path: str
    datasets: tuple[DatasetConfig, ...]


def subset_kinds_for(command: str, masked_loss: bool = False) -> tuple[str, ...]:
    """The subset kinds a command trains on (sd-scripts: ControlNet subsets need --masked_loss)."""
    if command == "fine_tune":
        return (FINE_TUNING,)
    return (DREAMBOOTH, FINE_TUNING, CONTROLNET) if masked_loss else (DREAMBOOTH, FINE_TUNING)


def load_dataset_config(path: str | Path, kinds: Sequence[str] = SUBSET_KINDS) -> DatasetGroupConfig:
    """Read and validate a dataset config; `kinds` are the subset kinds the caller accepts."""
    path = Path(path)
    label = str(path)
    try:
        text = read_toml_text(path)  # JSON too: UTF-8 with or without a BOM
    except FileNotFoundError:
        raise OptionError([f"{label}: dataset config not found"]) from None
    except OSError as error:
        raise OptionError([f"{label}: cannot read the dataset config: {error}"]) from None
    except TomlSyntaxError as error:
        raise OptionError([error.located(label, "cannot read the dataset config")]) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise OptionError([f"{label}:{error.lineno}: invalid JSON: {error.msg}"]) from None
        lines: dict[tuple[TablePath, str], int] = {}
    else:
        try:
            data = load_toml(text)
        except TomlSyntaxError as error:
            raise OptionError([error.located(label)]) from None
        lines = key_lines(text)
    return validate_dataset_config(data, label, kinds, lines)


def validate_dataset_config(
    data: Any,
    label: str = "dataset config",
    kinds: Sequence[str] = SUBSET_KINDS,
    lines: dict[tuple[TablePath, str], int] | None = None,
) -> DatasetGroupConfig:
    """Validate an already-parsed dataset config (e.g. built by the GUI); see the module doc."""
    checker = _Checker(label, tuple(kinds), lines or {})
    result = checker.check(data)
    if checker.problems:
        raise OptionError(checker.problems)
    return result


def _own_kind(subset: dict[str, Any]) -> str:
    return FINE_TUNING if "metadata_file" in subset else DREAMBOOTH


def _first(name: str, *tables: dict[str, Any]) -> Any:
    return next(table[name] for table in tables if name in table)


class _Checker:
    def __init__(self, label: str, kinds: tuple[str, ...], lines: dict[tuple[TablePath, str], int]) -> None:
        self.label, self.kinds, self.lines = label, kinds, lines
        self.problems: list[str] = []

    def report(self, table: TablePath, where: str, key: str, message: str) -> None:
        line = self.lines.get((table, key)) or self.lines.get((table, ""))
        self.problems.append(
            f"{self.label}:{line}: {where}: {message}" if line else f"{self.label}: {where}: {message}"
        )

    def check(self, data: Any) -> DatasetGroupConfig:
        top: TablePath = ()
        if not isinstance(data, dict):
            self.report(top, "top level", "", "expected [general] and [[datasets]] tables")
            return DatasetGroupConfig(self.label, ())
        for key in data:
            if key not in ("general", "datasets"):
                self.report(top, "top level", key, top_level_problem(key))
        general = data.get("general", {})
        if not isinstance(general, dict):
            self.report(
                top, "top level", "general", "general must be a table: write [general] and key = value lines"
            )
            general = {}
        general_values = self._values(general, GENERAL, self.kinds, ("general",), "[general]", "")
        datasets = data.get("datasets", [])
        if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
            message = "datasets must be an array of tables: write [[datasets]] (double brackets)"
            self.report(top, "top level", "datasets", message)
            datasets = []
        elif not datasets:
            message = "no [[datasets]] table; add one with a [[datasets.subsets]] that sets image_dir"
            self.report(top, "top level", "", message)
        return DatasetGroupConfig(
            self.label, tuple(self._dataset(i, dataset, general_values) for i, dataset in enumerate(datasets))
        )

    def _dataset(self, i: int, dataset: dict[str, Any], general: dict[str, Any]) -> DatasetConfig:
        where, table = f"datasets[{i}]", ("datasets", i)
        subsets = dataset.get("subsets", [])
        if not isinstance(subsets, list) or not all(isinstance(s, dict) for s in subsets):
            self.report(
                table, where, "subsets", "subsets must be an array of tables: write [[datasets.subsets]]"
            )
            subsets = []
        elif not subsets:
            self.report(
                table, where, "", "no [[datasets.subsets]]; add one that sets image_dir (or metadata_file)"
            )
        kind, why = self._kind(subsets, table, where)
        own = {key: value for key, value in dataset.items() if key != "subsets"}
        values = self._values(own, DATASET, (kind,) if kind else self.kinds, table, where, why)
        configs = tuple(
            # A mixed dataset (kind None, already reported) still gets each subset checked on its own.
            self._subset(i, j, subset, kind or _own_kind(subset), why, values, general)
            for j, subset in enumerate(subsets)
        )
        params = {
            name: _first(name, values, general)
            for name, spec in DATASET_KEYS.items()
            if SUBSET not in spec.levels and (name in values or name in general)
        }
        return DatasetConfig(kind or DREAMBOOTH, params, configs)  # a mixed dataset raises anyway

    def _kind(self, subsets: list[dict[str, Any]], table: TablePath, where: str) -> tuple[str | None, str]:
        """The dataset's kind as sd-scripts infers it (None when mixed) and why, for messages."""
        if CONTROLNET in self.kinds and subsets and all("conditioning_data_dir" in s for s in subsets):
            return CONTROLNET, "its subsets set conditioning_data_dir"
        if DREAMBOOTH not in self.kinds and FINE_TUNING in self.kinds:
            return FINE_TUNING, "only fine-tuning datasets are accepted here"
        with_file = [j for j, s in enumerate(subsets) if "metadata_file" in s]
        if with_file and len(with_file) < len(subsets):
            without = [j for j in range(len(subsets)) if j not in with_file]
            self.report(
                table, where, "",
                f"DreamBooth subsets (no metadata_file: subsets {without}) and fine-tuning subsets "
                f"(metadata_file: subsets {with_file}) cannot be mixed in one dataset; "
                "split them into two [[datasets]] tables",
            )  # fmt: skip
            return None, ""
        if with_file:
            kind, why = FINE_TUNING, "its subsets set metadata_file"
        else:
            kind, why = DREAMBOOTH, "its subsets have no metadata_file"
        if kind not in self.kinds:
            accepted = ", ".join(KIND_LABELS[k] for k in self.kinds)
            self.report(
                table, where, "", f"{KIND_LABELS[kind]} datasets are not accepted here (accepted: {accepted})"
            )
        return kind, why

    def _subset(
        self, i: int, j: int, subset: dict[str, Any], kind: str, why: str,
        dataset: dict[str, Any], general: dict[str, Any],
    ) -> SubsetConfig:  # fmt: skip
        where, table = f"datasets[{i}].subsets[{j}]", ("datasets", i, "subsets", j)
        values = self._values(subset, SUBSET, (kind,), table, where, why)
        for name, spec in DATASET_KEYS.items():
            if kind in spec.required_for and name not in subset:
                what = spec.help[0].lower() + spec.help[1:].rstrip(".")
                because = f" ({why})" if why else ""
                message = f'missing "{name}" ({what}), required in a {KIND_LABELS[kind]} subset{because}'
                self.report(table, where, "", message)
        params = {
            name: _first(name, values, dataset, general)
            for name, spec in DATASET_KEYS.items()
            if SUBSET in spec.levels
            and kind in spec.subset_kinds
            and any(name in t for t in (values, dataset, general))
        }
        return SubsetConfig(kind, params)

    def _values(
        self,
        table_values: dict[str, Any],
        level: str,
        kinds: tuple[str, ...],
        table: TablePath,
        where: str,
        why: str,
    ) -> dict[str, Any]:
        """The table's keys converted; misplaced, unknown and ill-typed keys are reported and dropped."""
        converted: dict[str, Any] = {}
        for key, value in table_values.items():
            problem = placement_problem(key, level, kinds, self.kinds, why)
            if problem is None:
                # Before the value check, which refuses control characters in paths without knowing why.
                path = DATASET_KEYS[key].kind == "path" and isinstance(value, str)
                escaped = escaped_path_problem(value) if path else None
                if escaped:
                    problem = f'"{key}" {escaped}'
                else:
                    try:
                        converted[key] = from_value(DATASET_KEYS[key], value)
                    except ValueError as error:
                        problem = f'"{key}" {error}'
            if problem is not None:
                self.report(table, where, key, problem)
        return converted
