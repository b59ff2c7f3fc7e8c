"""Sample prompts (`--sample_prompts`), the sampler table (`--sample_sampler`) and sample file names.

Prompt files are read as sd-scripts reads them:
- `.txt`: one prompt per line, blank lines and lines starting with `#` skipped; options follow the
  prompt as ` --key value` (`--n` negative, `--w`/`--h` size, `--d` seed, `--l` CFG scale,
  `--s` steps, `--ss` sampler, plus `--g`, `--cn`, `--ctr`, `--rcfg`, `--fs`).
- `.toml`: a `[prompt]` table of shared values and `[[prompt.subset]]` entries, one per image.
- `.json`: a list whose items are prompt objects (same keys as TOML) or `.txt`-style strings.

Stricter than sd-scripts, on purpose: an unknown option or key, or a value that does not parse,
is an error naming the file and line (or entry) instead of being silently dropped, and the text
before the first ` --` is always the prompt (sd-scripts also read options from it).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.training.option_slice import OptionSlice

SAMPLER_NAMES: tuple[str, ...] = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a",
    "dpmsolver", "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
)  # fmt: skip


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the file and the line or entry."""


@dataclass
class SamplePrompt:
    prompt: str
    index: int = 0  # position in the file: names the image (`_NN_`)
    negative_prompt: str | None = None
    width: int = 512
    height: int = 512
    seed: int | None = None
    sample_steps: int = 30
    scale: float = 7.5  # classifier-free guidance
    sample_sampler: str | None = None  # None: --sample_sampler
    guidance_scale: float | None = None  # distilled-guidance models; unused by SD 1.x/2.x/SDXL
    controlnet_image: str | None = None
    # Flow-model options sd-scripts files may carry (cfg_trunc_ratio, renorm_cfg, flow_shift); kept, unused here.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as generated: rounded down to a multiple of 8, at least 64 (sd-scripts)."""
        return max(64, self.width - self.width % 8), max(64, self.height - self.height % 8)


def _sampler(value: str) -> str:
    name = value.strip().lower()
    if name not in SAMPLER_NAMES:
        raise ValueError(msg("preflight.prompts.unknown_sampler", "unknown sampler {name}; choose one of {names}",
                             name=repr(value), names=", ".join(SAMPLER_NAMES)))
    return name


def _steps(value: Any) -> int:
    return max(1, min(1000, int(value)))  # sd-scripts clamps to 1..1000


def _positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(msg("preflight.prompts.not_positive", "must be positive, got {value}", value=value))
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(msg("preflight.prompts.not_text", "must be text, got {value}", value=repr(value)))
    return value


# field name -> (converter, .txt option)
_FIELDS: dict[str, tuple[Any, str]] = {
    "prompt": (_text, ""),
    "negative_prompt": (_text, "n"),
    "width": (_positive_int, "w"),
    "height": (_positive_int, "h"),
    "seed": (int, "d"),
    "sample_steps": (_steps, "s"),
    "scale": (float, "l"),
    "guidance_scale": (float, "g"),
    "sample_sampler": (_sampler, "ss"),
    "controlnet_image": (_text, "cn"),
    "cfg_trunc_ratio": (float, "ctr"),
    "renorm_cfg": (float, "rcfg"),
    "flow_shift": (float, "fs"),
}
_TXT_OPTIONS = {opt: name for name, (_, opt) in _FIELDS.items() if opt}
_EXTRA_FIELDS = ("cfg_trunc_ratio", "renorm_cfg", "flow_shift")
_TXT_OPTION_RE = re.compile(r"([A-Za-z]+)(?:\s+(.*))?$", re.DOTALL)


def _closest(word: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(word, known, n=1)
    return repr(close[0]) if close else None


def _build(values: dict[str, Any], index: int, where: str) -> SamplePrompt:
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, raw in values.items():
        if key in ("subset", "enum"):  # structure keys sd-scripts leaves in the dicts
            continue
        if key not in _FIELDS:
            close = _closest(key, list(_FIELDS))
            if close:
                raise PromptFileError(msg("preflight.prompts.unknown_key_close", "{where}: unknown key {key} (did you "
                                          "mean {close}?)", where=where, key=repr(key), close=close))
            raise PromptFileError(msg("preflight.prompts.unknown_key", "{where}: unknown key {key}", where=where,
                                      key=repr(key)))
        try:
            value = _FIELDS[key][0](raw)
        except (TypeError, ValueError) as exc:
            raise PromptFileError(msg("preflight.prompts.bad_value", "{where}: bad {key} {value}: {error}",
                                      where=where, key=key, value=repr(raw), error=exc)) from None
        (extra if key in _EXTRA_FIELDS else kwargs)[key] = value
    if not kwargs.get("prompt", "").strip():
        raise PromptFileError(msg("preflight.prompts.no_prompt", "{where}: no prompt", where=where))
    return SamplePrompt(index=index, extra=extra, **kwargs)


def parse_prompt_line(line: str, index: int = 0, where: str = "prompt") -> SamplePrompt:
    """One `.txt` line: `prompt text --n negative --w 768 --h 512 --d 42 --l 7 --s 28 --ss euler_a`."""
    # The leading space makes a line that starts with an option have an empty prompt.
    prompt, *options = (" " + line.strip()).split(" --")
    values: dict[str, Any] = {"prompt": prompt.strip()}
    for option in options:
        match = _TXT_OPTION_RE.match(option.strip())
        key = match.group(1).lower() if match else option.strip()
        if match is None or key not in _TXT_OPTIONS:
            close = _closest(key, list(_TXT_OPTIONS))
            if close:
                raise PromptFileError(msg("preflight.prompts.unknown_option_close", "{where}: unknown option --{key} "
                                          "(did you mean {close}?)", where=where, key=key, close=close))
            raise PromptFileError(msg("preflight.prompts.unknown_option", "{where}: unknown option --{key}",
                                      where=where, key=key))
        value = (match.group(2) or "").strip()
        if not value and key != "n":  # `--n` with nothing after it is an empty negative prompt
            raise PromptFileError(msg("preflight.prompts.needs_value", "{where}: option --{key} needs a value",
                                      where=where, key=key))
        values[_TXT_OPTIONS[key]] = value
    return _build(values, index, where)


def load_sample_prompts(path: str | Path) -> list[SamplePrompt]:
    """Read a `.txt`, `.toml` or `.json` prompt file into prompts numbered in file order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".toml", ".json"):
        raise PromptFileError(msg("preflight.prompts.suffix", "{path}: prompt files must end in .txt, .toml or .json",
                                  path=path))
    from backend.options.toml_lines import TomlSyntaxError, read_toml_text

    try:
        text = read_toml_text(path)  # UTF-8 without the BOM Notepad may write
    except OSError as exc:
        raise PromptFileError(msg("preflight.prompts.unreadable", "{path}: cannot read the prompt file: {error}",
                                  path=path, error=exc)) from None
    except TomlSyntaxError as exc:  # not UTF-8
        raise PromptFileError(exc.located(str(path), msg("preflight.prompts.cannot_read", "cannot read the prompt "
                                                         "file"))) from None
    if suffix == ".txt":
        lines = [
            (n, line)
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")
        ]
        return [
            parse_prompt_line(line, i, msg("preflight.prompts.at_line", "{path}, line {line}", path=path, line=n))
            for i, (n, line) in enumerate(lines)
        ]
    if suffix == ".toml":
        return _from_toml(path, text)
    return _from_json(path, text)


def _from_toml(path: Path, text: str) -> list[SamplePrompt]:
    from backend.options.toml_lines import TomlSyntaxError, load_toml

    try:
        data = load_toml(text)
    except TomlSyntaxError as exc:
        raise PromptFileError(exc.located(str(path), msg("preflight.prompts.not_toml", "not valid TOML"))) from None
    table = data.get("prompt")
    subsets = table.get("subset") if isinstance(table, dict) else None
    if not isinstance(subsets, list) or not subsets:
        raise PromptFileError(msg("preflight.prompts.no_subsets", "{path}: expected a [prompt] table with "
                                  "[[prompt.subset]] entries", path=path))
    shared = {k: v for k, v in table.items() if k != "subset"}
    return [
        _build({**shared, **subset}, i, msg("preflight.prompts.at_subset", "{path}, [[prompt.subset]] #{number}",
                                           path=path, number=i + 1))
        for i, subset in enumerate(subsets)
    ]


def _from_json(path: Path, text: str) -> list[SamplePrompt]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptFileError(msg("preflight.prompts.not_json", "{path}: not valid JSON: {error}", path=path,
                                  error=exc)) from None
    if not isinstance(data, list):
        raise PromptFileError(msg("preflight.prompts.not_a_list", "{path}: expected a list of prompts", path=path))
    prompts = []
    for i, item in enumerate(data):
        where = msg("preflight.prompts.at_entry", "{path}, entry #{number}", path=path, number=i + 1)
        if isinstance(item, str):
            prompts.append(parse_prompt_line(item, i, where))
        elif isinstance(item, dict):
            prompts.append(_build(item, i, where))
        else:
            raise PromptFileError(msg("preflight.prompts.bad_entry", "{where}: expected a prompt object or string",
                                      where=where))
    return prompts


def prompt_to_dict(prompt: SamplePrompt) -> dict[str, Any]:
    """sd-scripts' prompt dict (`enum` = index), e.g. for JSON logs of what was sampled."""
    data = {
        k: v for k, v in dataclasses.asdict(prompt).items() if v is not None and k not in ("extra", "index")
    }
    return {**data, **prompt.extra, "enum": prompt.index}


# Samplers (diffusers schedulers) -----------------------------------------------------------------

# sd-scripts samples with this schedule whatever the model's own scheduler config says.
DEFAULT_SAMPLER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}

# name -> (diffusers class, extra kwargs)
_SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    # diffusers rejects the default final_sigmas_type="zero" for the (first-order) dpmsolver algorithm.
    "dpmsolver": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"},
    ),
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    # diffusers switches this on anyway for final_sigmas_type="zero" (with a warning per sample).
    "dpmsingle": ("DPMSolverSinglestepScheduler", {"lower_order_final": True}),
}


def sampler_class_and_kwargs(name: str) -> tuple[str, dict[str, Any]]:
    """The diffusers scheduler class name and constructor kwargs for a sampler name (k_ aliases too)."""
    key = _sampler(name)
    key = key[2:] if key.startswith("k_") else key
    cls_name, kwargs = _SAMPLERS[key]
    return cls_name, dict(kwargs)


def get_sampler_scheduler(
    name: str, scheduler_config: dict[str, Any] | None = None, v_parameterization: bool = False
) -> Any:
    """A diffusers scheduler for sampling with `name`, built from `scheduler_config` (default: sd-scripts').

    Like sd-scripts, clip_sample is turned on where the scheduler has it (DDIM) and v-prediction is
    set for v-parameterized models.
    """
    import diffusers

    cls_name, kwargs = sampler_class_and_kwargs(name)
    cls = getattr(diffusers, cls_name)
    if "dummy" in cls.__module__:  # diffusers' placeholder when an optional backend is missing
        raise ImportError(msg("preflight.prompts.sampler_needs_scipy", "sampler {name} ({cls}) needs scipy: pip "
                              "install scipy, or choose another sampler", name=name, cls=cls_name))
    config = dict(DEFAULT_SAMPLER_CONFIG if scheduler_config is None else scheduler_config)
    config.update(kwargs)
    if v_parameterization:
        config["prediction_type"] = "v_prediction"
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        config["clip_sample"] = True
    return cls.from_config(config)


def check_sampler_available(name: str) -> str | None:
    """None if sample images can be made with `name` here; otherwise why not (for preflight checks)."""
    try:
        get_sampler_scheduler(name)
    except (ImportError, ValueError) as exc:
        return str(exc)
    return None


# File names and when to sample ----------------------------------------------------------------------


def sample_image_filename(
    output_name: str | None,
    index: int,
    *,
    epoch: int | None = None,
    step: int = 0,
    seed: int | None = None,
    timestamp: float | None = None,
) -> str:
    """`<output_name>_<e000001|000500>_<NN>_<YYYYmmddHHMMSS>[_seed].png` as sd-scripts names samples.

    The epoch form is used for end-of-epoch samples, the step form otherwise.
    """
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(timestamp))
    counter = f"e{epoch:06d}" if epoch is not None else f"{step:06d}"
    prefix = f"{output_name}_" if output_name else ""
    suffix = "" if seed is None else f"_{seed}"
    return f"{prefix}{counter}_{index:02d}_{stamp}{suffix}.png"


@dataclass(frozen=True)
class SampleConfig(OptionSlice):
    """When a run samples, from which prompts, with which sampler; prompts are encoded as in training."""

    sample_prompts: str | None
    sample_every_n_steps: int | None
    sample_every_n_epochs: int | None
    sample_at_first: bool
    sample_sampler: str
    clip_skip: int | None
    max_token_length: int | None


def should_sample(
    *,
    step: int,
    epoch: int | None,
    every_n_steps: int | None,
    every_n_epochs: int | None,
    at_first: bool,
) -> bool:
    """sd-scripts' sampling trigger; `epoch` is set only for the end-of-epoch check.

    Step 0 samples only with `at_first`. With `every_n_epochs`, `every_n_steps` is ignored.
    Values <= 0 disable a trigger.
    """
    if step == 0:
        return at_first
    if every_n_epochs is not None and every_n_epochs > 0:
        return epoch is not None and epoch % every_n_epochs == 0
    if every_n_steps is not None and every_n_steps > 0:
        return epoch is None and step % every_n_steps == 0
    return False
