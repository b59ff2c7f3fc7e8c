"""What Quick LoRA chooses, as pure functions: the family's quick preset (presets/quick/<model type>.json), the
repeats for the dataset's size, the settings for a kind of LoRA (character, style, concept) on a card, the captioner
and the sample prompts. Every chosen option carries where it came from, so the page can say why.

The presets are data files named by model type: gui/ never names a family (tests/gui/test_no_family_names.py), and
a family without a quick preset is told to use the LoRA page. No gradio, no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gui.training.training_kinds import REPO

QUICK_PRESETS = REPO / "presets" / "quick"
KINDS = ("character", "style", "concept")
# The card sizes offered (GB); "cpu" trains without a GPU (very slow; for trying the flow).
CARDS = ("cpu", "8", "12", "16", "24", "48")
STYLES = ("auto", "anime", "photo")
# The class word of the `<repeats>_<trigger> <class>` folder, per kind: the caption of an image left without one.
CLASS_WORDS = {"character": "person", "style": "style", "concept": "object"}
MAX_REPEATS = 100
# Words in a model's file name that mark an anime/illustration model (its captions were booru tags).
ANIME_WORDS = (
    "anime",
    "illustrious",
    "noob",
    "pony",
    "animagine",
    "waifu",
    "kohaku",
    "hentai",
    "manga",
    "toon",
)
# The sample prompts per kind ({trigger}, {cls}: the trigger and class words); the size and steps are added.
SAMPLE_PROMPTS = {
    "character": (
        "{trigger}, {cls}, looking at viewer, upper body",
        "{trigger}, {cls}, full body, standing outdoors",
    ),
    "style": ("{trigger}, a mountain lake at sunrise", "{trigger}, portrait of a woman reading a book"),
    "concept": ("{trigger}, {cls}", "{trigger}, {cls}, on a wooden table"),
}
SAMPLE_NEGATIVE = "lowres, blurry, bad anatomy"
SAMPLE_STEPS = 24


@dataclass(frozen=True)
class QuickPreset:
    model_type: str
    resolution: int
    anime_tags: (
        bool  # WD14 tags (not BLIP sentences) caption images for an anime/illustration model of the family
    )
    options: Mapping[str, Any]
    kinds: Mapping[
        str, Mapping[str, Any]
    ]  # per kind: options plus "images_per_epoch" (what the repeats aim at)
    cards: Mapping[
        str, Mapping[str, Any]
    ]  # per card size ("cpu", "8", ...): the family's memory savers for it


def load_quick_preset(model_type: str, folder: Path = QUICK_PRESETS) -> QuickPreset | None:
    """The quick preset of a model type; None when the family has none."""
    path = folder / f"{model_type}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return QuickPreset(data["model_type"], int(data["resolution"]), bool(data.get("anime_tags")), data["options"],
                       data["kinds"], data["cards"])  # fmt: skip


def quick_model_types(folder: Path = QUICK_PRESETS) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.json"))


def card_key(card: str, cards: Mapping[str, Any]) -> str:
    """The savers entry for a card: "cpu", else the largest size not above the card (a 10 GB card gets 8 GB's)."""
    if card == "cpu":
        return "cpu"
    sizes = sorted(int(key) for key in cards if key.isdigit())
    fitting = [size for size in sizes if size <= float(card)]
    return str(fitting[-1] if fitting else sizes[0])


def card_of_memory(mib: int) -> str:
    """The largest offered card size not above a GPU's memory (nvidia-smi counts MiB; an "8 GB" card has a bit less)."""
    sizes = [int(card) for card in CARDS if card.isdigit()]
    gb = mib / 1024 + 0.6
    fitting = [size for size in sizes if size <= gb]
    return str(fitting[-1] if fitting else sizes[0])


def choose_repeats(images: int, images_per_epoch: int) -> int:
    """Repeats so an epoch shows about `images_per_epoch` images: many for a small set, 1 for a large one."""
    if images < 1:
        return 1
    return max(1, min(MAX_REPEATS, round(images_per_epoch / images)))


def steps_of(images: int, repeats: int, epochs: int, batch_size: int) -> int:
    """Optimizer steps of the run (sd-scripts: batches per epoch times epochs)."""
    return math.ceil(images * repeats / max(1, batch_size)) * epochs


def is_anime_model(path: str) -> bool:
    name = Path(path).name.lower()
    return any(word in name for word in ANIME_WORDS)


def captioner_for(preset: QuickPreset, style: str, model_path: str) -> tuple[str, str]:
    """("wd14" or "blip", the style it decided on): WD14 tags for an anime/illustration model of a family whose
    anime models were trained on tags, BLIP sentences otherwise. `style` "auto" follows the model's file name."""
    resolved = style if style in ("anime", "photo") else ("anime" if is_anime_model(model_path) else "photo")
    return ("wd14" if preset.anime_tags and resolved == "anime" else "blip"), resolved


def sample_prompts_text(kind: str, trigger: str, class_word: str, width: int, height: int) -> str:
    lines = [
        f"{prompt.format(trigger=trigger, cls=class_word)} --n {SAMPLE_NEGATIVE} --w {width} --h {height} "
        f"--s {SAMPLE_STEPS} --l 7 --d {seed}"
        for seed, prompt in enumerate(SAMPLE_PROMPTS[kind], start=1)
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Choice:
    option: str
    value: Any
    source: str  # "family", "kind", "card", "planner", "dataset", "flow" or "you"
    note: str = ""  # the planner's own reason, when it made the change


@dataclass
class Settings:
    options: dict[str, Any]
    choices: list[Choice] = field(default_factory=list)

    def set(self, option: str, value: Any, source: str, note: str = "") -> None:
        self.options[option] = value
        self.choices = [choice for choice in self.choices if choice.option != option]
        self.choices.append(Choice(option, value, source, note))

    def apply(self, values: Mapping[str, Any], source: str) -> None:
        for option, value in values.items():
            self.set(option, value, source)


@dataclass(frozen=True)
class Adjustments:
    """What the user set on the Quick page itself (None: let the flow choose)."""

    resolution: int | None = None
    epochs: int | None = None
    repeats: int | None = None


def kind_settings(preset: QuickPreset, kind: str) -> tuple[dict[str, Any], int]:
    """(the kind's options, the images per epoch its repeats aim at)."""
    values = dict(preset.kinds[kind])
    return values, int(values.pop("images_per_epoch"))


def base_settings(
    preset: QuickPreset, kind: str, adjust: Adjustments = Adjustments()
) -> tuple[Settings, int]:
    """The family's and the kind's options (the card's savers come after, gui/quick/memory_fit.py), the user's
    adjustments last; returns them with the images per epoch the repeats aim at."""
    settings = Settings({})
    settings.set("resolution", str(preset.resolution), "family")
    settings.apply(preset.options, "family")
    values, images_per_epoch = kind_settings(preset, kind)
    settings.apply(values, "kind")
    settings.set("save_every_n_epochs", 1, "flow")
    settings.set("sample_every_n_epochs", 1, "flow")
    settings.set("caption_extension", ".txt", "flow")
    if adjust.resolution is not None:
        settings.set("resolution", str(adjust.resolution), "you")
    if adjust.epochs is not None:
        settings.set("max_train_epochs", adjust.epochs, "you")
    return settings, images_per_epoch


def resolution_size(resolution: Any) -> tuple[int, int]:
    """(width, height) of a resolution option ("512" or "768,512")."""
    parts = [int(part) for part in str(resolution).replace(" ", "").split(",") if part]
    return (parts[0], parts[-1]) if parts else (512, 512)


def sorted_choices(choices: Sequence[Choice]) -> list[Choice]:
    """In the order a run is thought through: data, network, learning, memory, samples, the rest."""
    order = ["train_data_dir", "output_dir", "output_name", "resolution", "network_dim", "network_alpha",
             "max_train_epochs", "train_batch_size", "learning_rate", "optimizer_type", "mixed_precision"]  # fmt: skip
    return sorted(
        choices, key=lambda c: (order.index(c.option) if c.option in order else len(order), c.option)
    )
