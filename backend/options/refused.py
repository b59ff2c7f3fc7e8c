"""sd-scripts flags that cannot mean anything in this trainer: refused with the reason and what to use instead.

They differ from the flags not implemented yet (`names.unknown_name_message` says "does not implement"): no
implementation could give them a meaning here, so the message says why and names the way to the same end.
"""

from __future__ import annotations

from backend.messages import msg

REFUSED_FLAGS = frozenset({"dataset_class"})


def refusal(name: str, flag: str) -> str | None:
    """Why `name` (written as `flag`, quoted) is refused, or None when it is not one of REFUSED_FLAGS."""
    if name == "dataset_class":
        return msg(
            "options.refused.dataset_class",
            "{flag} cannot be used with this trainer: sd-scripts imports the named Python class, which must subclass "
            "its own train_util dataset classes, and this trainer has none of those (its data layer is its own). "
            "Describe the dataset in a dataset TOML instead (--dataset_config: [[datasets]] with [[datasets.subsets]] "
            "that set image_dir or metadata_file, num_repeats and the caption options) and remove {flag}",
            flag=flag,
        )  # fmt: skip
    return None
