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

from backend.messages import msg
from backend.options.dataset_keys import (
    CONTROLNET,
    DATASET,
    DATASET_KEYS,
    DREAMBOOTH,
    FINE_TUNING,
    GENERAL,
    SUBSET,
    SUBSET_KINDS,
)
from backend.options.dataset_messages import kind_label, kind_list, placement_problem, top_level_problem
from backend.options.errors import OptionError
from backend.options.toml_lines import (
    TablePath,
    TomlSyntaxError,
    escaped_path_problem,
    key_lines,
    load_toml,
    read_toml_text,
)
from backend.options.values import from_value, subject_problem


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
        raise OptionError([msg("dataset.config.not_found", "{path}: dataset config not found", path=label)]) from None
    except OSError as error:
        raise OptionError([msg(
            "dataset.config.unreadable", "{path}: cannot read the dataset config: {error}", path=label, error=error
        )]) from None  # fmt: skip
    except TomlSyntaxError as error:
        raise OptionError([msg(
            "dataset.config.unreadable_at", "{path}:{line}: cannot read the dataset config: {detail}",
            path=label, line=error.line, detail=error.detail,
        )]) from None  # fmt: skip
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            # error.msg: the json module's English words ("Expecting ',' delimiter").
            raise OptionError([msg(
                "dataset.config.invalid_json", "{path}:{line}: invalid JSON: {detail} (column {column})",
                path=label, line=error.lineno, detail=error.msg, column=error.colno,
            )]) from None  # fmt: skip
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
        at_top = msg("dataset.where.top_level", "top level")
        if not isinstance(data, dict):
            self.report(top, at_top, "", msg("dataset.config.not_tables", "expected [general] and [[datasets]] tables"))
            return DatasetGroupConfig(self.label, ())
        for key in data:
            if key not in ("general", "datasets"):
                self.report(top, at_top, key, top_level_problem(key))
        general = data.get("general", {})
        if not isinstance(general, dict):
            message = msg("dataset.config.general_not_table", "general must be a table: write [general] and key = value lines")
            self.report(top, at_top, "general", message)
            general = {}
        general_values = self._values(general, GENERAL, self.kinds, ("general",), "[general]", "")
        datasets = data.get("datasets", [])
        if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
            message = msg(
                "dataset.config.datasets_not_array", "datasets must be an array of tables: write [[datasets]] (double brackets)"
            )
            self.report(top, at_top, "datasets", message)
            datasets = []
        elif not datasets:
            message = msg(
                "dataset.config.no_datasets",
                "no [[datasets]] table; add one with a [[datasets.subsets]] that sets image_dir",
            )
            self.report(top, at_top, "", message)
        return DatasetGroupConfig(
            self.label, tuple(self._dataset(i, dataset, general_values) for i, dataset in enumerate(datasets))
        )

    def _dataset(self, i: int, dataset: dict[str, Any], general: dict[str, Any]) -> DatasetConfig:
        where, table = f"datasets[{i}]", ("datasets", i)
        subsets = dataset.get("subsets", [])
        if not isinstance(subsets, list) or not all(isinstance(s, dict) for s in subsets):
            message = msg("dataset.config.subsets_not_array", "subsets must be an array of tables: write [[datasets.subsets]]")
            self.report(table, where, "subsets", message)
            subsets = []
        elif not subsets:
            message = msg("dataset.config.no_subsets", "no [[datasets.subsets]]; add one that sets image_dir (or metadata_file)")
            self.report(table, where, "", message)
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
            return CONTROLNET, msg("dataset.why.conditioning_data_dir", "its subsets set conditioning_data_dir")
        if DREAMBOOTH not in self.kinds and FINE_TUNING in self.kinds:
            return FINE_TUNING, msg("dataset.why.fine_tuning_only", "only fine-tuning datasets are accepted here")
        with_file = [j for j, s in enumerate(subsets) if "metadata_file" in s]
        if with_file and len(with_file) < len(subsets):
            without = [j for j in range(len(subsets)) if j not in with_file]
            self.report(table, where, "", msg(
                "dataset.config.mixed_kinds",
                "DreamBooth subsets (no metadata_file: subsets {without}) and fine-tuning subsets (metadata_file: "
                "subsets {with_file}) cannot be mixed in one dataset; split them into two [[datasets]] tables",
                without=without, with_file=with_file,
            ))  # fmt: skip
            return None, ""
        if with_file:
            kind, why = FINE_TUNING, msg("dataset.why.metadata_file", "its subsets set metadata_file")
        else:
            kind, why = DREAMBOOTH, msg("dataset.why.no_metadata_file", "its subsets have no metadata_file")
        if kind not in self.kinds:
            self.report(table, where, "", msg(
                "dataset.config.kind_not_accepted", "{kind} datasets are not accepted here (accepted: {accepted})",
                kind=kind_label(kind), accepted=kind_list(self.kinds),
            ))  # fmt: skip
        return kind, why

    def _subset(
        self, i: int, j: int, subset: dict[str, Any], kind: str, why: str,
        dataset: dict[str, Any], general: dict[str, Any],
    ) -> SubsetConfig:  # fmt: skip
        where, table = f"datasets[{i}].subsets[{j}]", ("datasets", i, "subsets", j)
        values = self._values(subset, SUBSET, (kind,), table, where, why)
        for name, spec in DATASET_KEYS.items():
            if kind in spec.required_for and name not in subset:
                self.report(table, where, "", _missing_key(name, kind, why))
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
                    problem = subject_problem(key, escaped)
                else:
                    try:
                        converted[key] = from_value(DATASET_KEYS[key], value)
                    except ValueError as error:
                        problem = subject_problem(key, str(error))
            if problem is not None:
                self.report(table, where, key, problem)
        return converted


def _missing_key(name: str, kind: str, why: str) -> str:
    """A key a subset of `kind` cannot do without (image_dir, metadata_file, conditioning_data_dir)."""
    what = {
        "image_dir": msg("dataset.required.image_dir", "folder of training images"),
        "metadata_file": msg(
            "dataset.required.metadata_file", "metadata JSON with captions, written by the captioning/merge tools"
        ),
        "conditioning_data_dir": msg(
            "dataset.required.conditioning_data_dir", "folder of conditioning images with the same names as image_dir"
        ),
    }.get(name, DATASET_KEYS[name].help)
    given = {"name": name, "what": what, "kind": kind_label(kind), "why": why}
    if why:
        return msg(
            "dataset.config.missing_key_because", 'missing "{name}" ({what}), required in a {kind} subset ({why})', **given
        )
    return msg("dataset.config.missing_key", 'missing "{name}" ({what}), required in a {kind} subset', **given)
