"""LECO's "dataset": no images, one draw per step.

The loop goes through a `DatasetGroup` in batches; LECO trains from the model's own predictions on prompt
settings instead, so its group is one epoch of `max_train_steps x gradient_accumulation_steps` batches that
carry nothing but their index. Each batch's draws (which prompt setting, how far to denoise, the starting
noise) come from the generator the loop seeds from (seed, epoch, that index) (step.sample_generators), so a
resumed run draws exactly what the uninterrupted one drew, and the loop's resume, saves, progress and
sampling apply unchanged. With several processes each takes its own draw of every step
(index x processes + rank) and the gradients are averaged, as sd-scripts' LECO scripts do under accelerate.
"""

from __future__ import annotations

from pathlib import Path

from backend.data.dataset import DatasetGroup
from backend.training.leco_prompts import PromptSetting, settings_preview


class LecoStepGroup(DatasetGroup):
    """`batches` steps' worth of empty batches, in one epoch (LECO counts steps only)."""

    def __init__(self, settings: list[PromptSetting], prompts_file: str, batches: int, seed: int, processes: int = 1,
                 rank: int = 0) -> None:
        # Not DatasetGroup.__init__: it requires image datasets. The attributes the loop, the metadata writer
        # and the resume check read are set here.
        self.datasets = []
        self.seed = seed
        self.rank = rank
        self.processes = processes
        self.epoch = 1
        self.steps = None
        self._order = None
        self._batches = batches
        self.settings = settings
        self.prompts_file = prompts_file

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the first setting, as the files record a run's resolution (modelspec.resolution)."""
        height, width = self.settings[0].resolution
        return width, height

    def metadata_keys(self) -> dict[str, str]:
        """sd-scripts' LECO keys in place of the dataset's."""
        return {"ss_leco_prompt_count": str(len(self.settings)), "ss_leco_prompts_file": Path(self.prompts_file).name,
                "ss_leco_preview": settings_preview(self.settings)}

    def __len__(self) -> int:
        return self._batches

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        _, index = key if isinstance(key, tuple) else (self.epoch, key)
        if not 0 <= index < self._batches:
            raise IndexError(index)
        return {"sample_indices": [index * self.processes + self.rank]}

    @property
    def num_train_images(self) -> int:
        return 0

    @property
    def num_reg_images(self) -> int:
        return 0

    def validation_group(self) -> None:
        return None

    def caption_variation(self) -> list[str]:
        return []
