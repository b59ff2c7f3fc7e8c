"""LECO prompt files (--prompts_file): sd-scripts' two TOML formats, read and checked before any model loads.

Formats (sd-scripts' library/leco_train_util.py, docs/train_leco.md):
- `[[prompts]]`, the original LECO format: each entry one setting; `target` required; `positive` defaults to the
  target, `unconditional` to "", `neutral` to the unconditional prompt, `action` "erase" or "enhance"; top-level keys
  of the same names are defaults.
- `[[targets]]` (also under `[slider]`), the slider format: `target_class` and at least one of `positive`/`negative`;
  each target expands to 4 settings (both prompts) or 2 (one), erase and enhance at +/- multiplier, once per
  neutral prompt (`neutrals` list, `neutral_prompt_file` lines beside the prompt file, or `neutral`) and per
  resolution (`resolutions`). Top-level keys are defaults.
- Shared keys: guidance_scale (1.0: strength of the erase/enhance target), resolution (512: int or [height, width]),
  dynamic_resolution, batch_size (1), dynamic_crops (SDXL), multiplier (1.0: the LoRA's during training), weight.

Decisions, stricter than sd-scripts (which ignores unknown keys and fails late in the run):
- unknown keys are errors naming the file, the entry and the nearest known key;
- a resolution must be a multiple of 64 (the U-Net halves the latents three times: 8 x 2^3; sd-scripts draws the
  dynamic resolutions in steps of 64 too), positive;
- every problem of the file is reported at once (PromptFileProblems), as preflight lists them.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import toml

from backend.messages import msg

RESOLUTION_STEP = 64
SHARED_KEYS = ("guidance_scale", "resolution", "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier",
               "weight")
PROMPT_KEYS = ("target", "positive", "unconditional", "neutral", "action", *SHARED_KEYS)
SLIDER_KEYS = ("target_class", "positive", "negative", "neutral", "neutrals", "neutral_prompt_file", "prompt_file",
               "resolutions", *SHARED_KEYS)
DEFAULTS: dict[str, Any] = {"guidance_scale": 1.0, "resolution": 512, "dynamic_resolution": False, "batch_size": 1,
                            "dynamic_crops": False, "multiplier": 1.0, "weight": 1.0}
ACTIONS = ("erase", "enhance")


class PromptFileError(ValueError):
    """Every problem of a prompt file, one per line, each naming the file, the entry and the key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PromptSetting:
    """One training setting (sd-scripts' PromptSettings), every default resolved."""

    target: str
    positive: str
    unconditional: str
    neutral: str
    action: str
    guidance_scale: float
    resolution: tuple[int, int]  # (height, width)
    dynamic_resolution: bool
    batch_size: int
    dynamic_crops: bool
    multiplier: float
    weight: float

    @property
    def prompts(self) -> tuple[str, str, str, str]:
        return (self.target, self.positive, self.unconditional, self.neutral)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, where: str, text: str) -> None:
        self.problems.append(msg("leco.prompts.problem", "{path}: {where}: {text}", path=self.path, where=where,
                                 text=text))

    def unknown_keys(self, where: str, item: dict[str, Any], known: tuple[str, ...], also: tuple[str, ...] = ()) -> None:
        for key in item:
            if key in known or key in also:
                continue
            near = difflib.get_close_matches(key, known, n=1)
            self.problem(where, msg(
                "leco.prompts.unknown_key", 'unknown key "{key}"{near}; the keys here are {known}', key=key,
                near=msg("leco.prompts.did_you_mean", ' (did you mean "{name}"?)', name=near[0]) if near else "",
                known=", ".join(known)))

    def text(self, where: str, item: dict[str, Any], key: str, default: str) -> str:
        value = item.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(where, msg("leco.prompts.not_text", '"{key}" must be text in quotes, not {value}', key=key,
                                    value=json.dumps(value)))
            return default
        return value

    def number(self, where: str, item: dict[str, Any], key: str, integer: bool = False) -> Any:
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            self.problem(where, msg("leco.prompts.not_number", '"{key}" must be {kind}, not {value}', key=key,
                                    kind=msg("leco.prompts.whole_number", "a whole number") if integer
                                    else msg("leco.prompts.number", "a number"), value=json.dumps(value)))
            return DEFAULTS[key]
        return value

    def resolution(self, where: str, value: Any, key: str = "resolution") -> tuple[int, int]:
        pair = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
            self.problem(where, msg("leco.prompts.resolution_form", '"{key}" must be a whole number or [height, '
                                    'width], not {value}', key=key, value=json.dumps(value)))
            return (512, 512)
        if any(v <= 0 or v % RESOLUTION_STEP for v in pair):
            self.problem(where, msg(
                "leco.prompts.resolution_step", '"{key}" {value}: each side must be a positive multiple of {step} '
                "(the U-Net halves the latents three times); use e.g. {fixed}", key=key, value=json.dumps(value),
                step=RESOLUTION_STEP, fixed=json.dumps(max(RESOLUTION_STEP, round(pair[0] / RESOLUTION_STEP)
                                                           * RESOLUTION_STEP))))
            return (512, 512)
        return (pair[0], pair[1])

    def setting(self, where: str, merged: dict[str, Any], **prompts: Any) -> PromptSetting | None:
        start = len(self.problems)
        values = {key: self.number(where, merged, key, integer=key == "batch_size") for key in
                  ("guidance_scale", "batch_size", "multiplier", "weight")}
        if values["batch_size"] < 1:
            self.problem(where, msg("leco.prompts.batch_size", '"batch_size" must be 1 or more, not {value}',
                                    value=values["batch_size"]))
        flags = {}
        for key in ("dynamic_resolution", "dynamic_crops"):
            flags[key] = merged[key]
            if not isinstance(flags[key], bool):
                self.problem(where, msg("leco.prompts.not_bool", '"{key}" must be true or false, not {value}',
                                        key=key, value=json.dumps(flags[key])))
        resolution = prompts.pop("resolution")
        pair = resolution if isinstance(resolution, tuple) else self.resolution(where, resolution)
        if len(self.problems) > start:
            return None
        return PromptSetting(**prompts, resolution=pair, **values, **flags)


def _lines(reader: _Reader, where: str, name: Any) -> list[str]:
    if not isinstance(name, str):
        reader.problem(where, msg("leco.prompts.not_text", '"{key}" must be text in quotes, not {value}',
                                  key="neutral_prompt_file", value=json.dumps(name)))
        return []
    path = reader.path.parent / name
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        reader.problem(where, msg("leco.prompts.neutral_file", "cannot read the neutral prompt file {file} ({error}); "
                                  "give a text file beside the prompt file, one prompt per line", file=path,
                                  error=exc.strerror or exc))
        return []


def _prompt_entry(reader: _Reader, where: str, item: dict[str, Any], defaults: dict[str, Any]) -> PromptSetting | None:
    reader.unknown_keys(where, item, PROMPT_KEYS)
    complete = "target" in item
    if not complete:
        reader.problem(where, msg("leco.prompts.no_target", 'no "target": each [[prompts]] entry names the concept '
                                  'the LoRA changes (target = "...")'))
    merged = {**defaults, **item}
    target = reader.text(where, merged, "target", "")
    action = merged.get("action", "erase")
    if action not in ACTIONS:
        reader.problem(where, msg("leco.prompts.action", '"action" {value}: it must be "erase" or "enhance"',
                                  value=json.dumps(action)))
        complete, action = False, "erase"
    unconditional = reader.text(where, merged, "unconditional", "")
    setting = reader.setting(where, merged, target=target, positive=reader.text(where, merged, "positive", target),
                             unconditional=unconditional, neutral=reader.text(where, merged, "neutral", unconditional),
                             action=action, resolution=merged["resolution"])
    return setting if complete else None


def _slider_entry(reader: _Reader, where: str, item: dict[str, Any], defaults: dict[str, Any],
                  neutrals: list[str]) -> list[PromptSetting]:
    reader.unknown_keys(where, item, SLIDER_KEYS)
    merged = {**defaults, **item}
    target_class = reader.text(where, merged, "target_class", "")
    positive = reader.text(where, merged, "positive", "").strip() and reader.text(where, merged, "positive", "")
    negative = reader.text(where, merged, "negative", "").strip() and reader.text(where, merged, "negative", "")
    if not positive and not negative:
        reader.problem(where, msg("leco.prompts.slider_empty", 'neither "positive" nor "negative": a slider target '
                                  "needs at least one of them (the direction the LoRA moves towards or away from)"))
        return []
    if "neutrals" in item:
        raw = item["neutrals"]
        neutrals = [str(v) for v in raw] if isinstance(raw, list) else []
    elif "neutral_prompt_file" in item or "prompt_file" in item:
        neutrals = _lines(reader, where, item.get("neutral_prompt_file", item.get("prompt_file")))
    elif "neutral" in item:
        neutrals = [reader.text(where, item, "neutral", "")]
    neutrals = neutrals or [reader.text(where, merged, "neutral", "")]
    resolutions_raw = merged.get("resolutions", merged["resolution"])
    if isinstance(resolutions_raw, list) and resolutions_raw and isinstance(resolutions_raw[0], list):
        resolutions = [reader.resolution(where, value, "resolutions") for value in resolutions_raw]
    else:
        resolutions = [reader.resolution(where, resolutions_raw)]
    multiplier = merged["multiplier"]
    if positive and negative:
        pairs = [(negative, positive, "erase", 1), (positive, negative, "enhance", 1),
                 (positive, negative, "erase", -1), (negative, positive, "enhance", -1)]
    elif negative:
        pairs = [(negative, "", "erase", 1), (negative, "", "enhance", -1)]
    else:
        pairs = [(positive, "", "enhance", 1), (positive, "", "erase", -1)]
    settings = []
    for neutral in neutrals:
        for resolution in resolutions:
            for pos, uncond, action, sign in pairs:
                values = {**merged, "multiplier": sign * multiplier if isinstance(multiplier, int | float)
                          and not isinstance(multiplier, bool) else multiplier}
                setting = reader.setting(where, values, target=target_class, positive=pos, unconditional=uncond,
                                         neutral=neutral, action=action, resolution=resolution)
                if setting is None:
                    return []
                settings.append(setting)
    return settings


def load_prompt_settings(path: str | Path) -> list[PromptSetting]:
    """The file's settings in sd-scripts' order, or PromptFileError listing every problem."""
    path = Path(path)
    reader = _Reader(path)
    try:
        data = toml.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptFileError([msg("leco.prompts.missing", "--prompts_file {path} does not exist; give the LECO "
                                   "prompt TOML ([[prompts]] or [[targets]])", path=path)]) from None
    except OSError as exc:
        raise PromptFileError([msg("leco.prompts.unreadable", "--prompts_file {path} cannot be read ({error})",
                                   path=path, error=exc.strerror or exc)]) from None
    except (toml.TomlDecodeError, UnicodeDecodeError) as exc:
        raise PromptFileError([msg("leco.prompts.syntax", "{path} is not valid TOML ({error}); fix the line it "
                                   "names", path=path, error=exc)]) from None
    settings: list[PromptSetting] = []
    if "prompts" in data:
        if "targets" in data:
            reader.problem("top level", msg(
                "leco.prompts.both_formats", "both [[prompts]] and [[targets]]: sd-scripts trains the [[prompts]] "
                "and silently ignores the [[targets]]; put the slider targets in a file of their own (or turn them "
                "into [[prompts]] entries with target_class)"))
        reader.unknown_keys("top level", data, PROMPT_KEYS, also=("prompts", "targets"))
        defaults = {**DEFAULTS, **{k: v for k, v in data.items() if k in PROMPT_KEYS}}
        for number, item in enumerate(_entries(reader, data, "prompts"), start=1):
            where = f"[[prompts]] #{number}"
            if "target_class" in item:  # a slider target among the prompts (sd-scripts takes it, with its neutral)
                settings += _slider_entry(reader, where, item, defaults, [])
                continue
            setting = _prompt_entry(reader, where, item, defaults)
            settings += [setting] if setting else []
    else:
        config = data.get("slider", data)
        if not isinstance(config, dict) or not ({"targets", "target_class", "target"} & config.keys()):
            raise PromptFileError([msg("leco.prompts.no_entries", "{path} has neither [[prompts]] nor [[targets]] "
                                       "entries; see README (LECO) for both formats", path=path)])
        if "targets" in config:
            items = _entries(reader, config, "targets")
            rest = {k: v for k, v in config.items() if k != "targets"}
        else:  # one target written at the top level (or under [slider]), as sd-scripts reads it
            items, rest = [{k: v for k, v in config.items() if k != "slider"}], {}
        if items and "target" in items[0]:  # [[targets]] in the original format: prompt entries
            reader.unknown_keys("top level", rest, PROMPT_KEYS, also=("slider",))
            defaults = {**DEFAULTS, **{k: v for k, v in rest.items() if k in PROMPT_KEYS}}
            for number, item in enumerate(items, start=1):
                setting = _prompt_entry(reader, f"[[targets]] #{number}", item, defaults)
                settings += [setting] if setting else []
        else:
            reader.unknown_keys("top level", rest, SLIDER_KEYS, also=("slider",))
            defaults = {**DEFAULTS, **{k: v for k, v in rest.items() if k in SLIDER_KEYS}}
            neutrals: list[str] = []
            if isinstance(rest.get("neutrals"), list):
                neutrals += [str(v) for v in rest["neutrals"]]
            for key in ("neutral_prompt_file", "prompt_file"):
                if key in rest:
                    neutrals += _lines(reader, "top level", rest[key])
            for number, item in enumerate(items, start=1):
                settings += _slider_entry(reader, f"[[targets]] #{number}", item, defaults, neutrals)
    if reader.problems:
        raise PromptFileError(reader.problems)
    if not settings:
        raise PromptFileError([msg("leco.prompts.empty", "{path} holds no prompt settings; add a [[prompts]] or "
                                   "[[targets]] entry", path=path)])
    return settings


def _entries(reader: _Reader, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data[key]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        reader.problem(key, msg("leco.prompts.not_tables", '"{key}" must be a list of tables ([[{key}]] entries)',
                                key=key))
        return []
    return items


def settings_preview(settings: list[PromptSetting]) -> str:
    """sd-scripts' ss_leco_preview: the first 16 settings as JSON."""
    keys = ("target", "positive", "unconditional", "neutral", "action", "multiplier", "weight")
    return json.dumps([{key: asdict(setting)[key] for key in keys} for setting in settings[:16]], ensure_ascii=False)
