"""The Fine-tuning steps of a kohya_ss config conversion, mixed into `convert._Converter` (which holds the
bookkeeping: `_take`, `_set`, `_report`, `_report_if_set`).

kohya_ss's Finetuning tab (`finetune_gui.py: train_model`) starts fine_tune.py for SD 1.x/2.x, or sdxl_train.py,
sd3_train.py, flux_train.py for the first of sdxl_checkbox, sd3_checkbox, flux1_checkbox that is on. Without a
dataset config it first makes sd-scripts' fine-tuning metadata itself:

- create_caption: merge_captions_to_metadata.py <image_folder> <train_dir>/<caption_metadata_filename>
  --caption_extension (".caption" when empty) [--full_path];
- create_buckets: prepare_buckets_latents.py <image_folder> <caption metadata> <train_dir>/<latent_metadata_filename>
  <model> --batch_size --max_resolution --min_bucket_reso --max_bucket_reso --mixed_precision [--full_path]
  (--mixed_precision=no for SDXL with sdxl_no_half_vae);

then trains with train_data_dir = image_folder, in_json = the latent metadata (use_latent_files "Yes") or the
caption metadata, and enable_bucket on. The training-time copy it saves beside the model names the two
checkboxes generate_caption_database and generate_image_buckets (train_model's names).

The import does not run those steps, it points in_json at the metadata file the config names, as kohya_ss's run
did, and reports each step kohya_ss would have run with the command line of our tool that does the same
(`backend.tools.merge_captions_to_metadata`, `prepare_buckets_latents`; the Fine-tuning page's metadata workflow
runs them too). Why not more:
- running them is not an import's business: they read every image and load the model's VAE, while an import
  reads one JSON file (and the images may be on another machine, or not captioned yet);
- training from the image folder directly is no way out: fine_tune (sd-scripts' and ours) reads a folder only
  DreamBooth-style, in '<repeats>_<name>' subfolders, while kohya_ss's image folder holds the images themselves;
  the metadata file is what fine_tune reads;
- latents that sd-scripts' tool cached carry no record of the model and settings they were made with; our
  trainer re-encodes such files, so the latents come from our tool (with --flip_aug when flip_aug is on: the
  cache then holds both sides, which training with flip_aug needs).
With a dataset config kohya_ss skips the steps and sd-scripts ignores in_json and train_data_dir; so does the import.

kohya_ss computes max_train_steps from the image count, dataset_repeats and epoch, then halves it with flip_aug
(it counts mirrored images as copies; sd-scripts' flip_aug mirrors at random and adds none); the import trains
the epochs and says so. Text encoder rates: learning_rate_te goes to fine_tune, learning_rate_te1/te2 to
sdxl_train (as kohya_ss passes them); since v26 kohya_ss passes a 0 rate (older versions left it out, so
sd-scripts used learning_rate), and a 0 rate keeps that encoder frozen.
"""

from __future__ import annotations

import os
from typing import Any

from backend.messages import msg
from backend.options.values import show
from gui.kohya_import.tables import SDXL_CHECKBOX
from gui.kohya_import.value_steps import _checked
from gui.kohya_import.values import is_empty, plain
from gui.training.command_export import format_bash, format_cmd

# The tab's dataset fields (finetune_gui.py) with the form's values, which kohya_ss uses for a key a config lacks.
DATASET_FIELDS: dict[str, Any] = {
    "image_folder": "", "train_dir": "", "caption_metadata_filename": "meta_cap.json",
    "latent_metadata_filename": "meta_lat.json", "use_latent_files": "Yes", "full_path": True,
    "create_caption": True, "create_buckets": True, "batch_size": "1",
}  # fmt: skip
# The names train_model gives the two checkboxes (in the copy kohya_ss saves beside a trained model).
TRAINING_COPY_NAMES = {"generate_caption_database": "create_caption", "generate_image_buckets": "create_buckets"}
TE_RATES = ("learning_rate_te", "learning_rate_te1", "learning_rate_te2")
KOHYA_TE_RATE = 1e-05  # the form's text encoder rates
# A key only v26 saves hold; since v26 kohya_ss passes 0 values to the fine-tuning scripts (`value is not False`).
V26_MARK = "lumina_checkbox"


def _join(folder: str, name: str) -> str:
    """kohya_ss's f"{train_dir}/{name}"."""
    return f"{folder.rstrip('/')}/{name}" if folder else name


class FineTuneSteps:
    """The dataset, metadata preparation and text encoder settings of a Fine-tuning config."""

    def _finetune(self) -> None:
        fields = {key: self._take(key) for key in DATASET_FIELDS}
        for old, key in TRAINING_COPY_NAMES.items():
            if old in self.data:
                fields[key] = self._take(old)
        fields = {key: DATASET_FIELDS[key] if value is None else value for key, value in fields.items()}
        if not is_empty(self.data.get("dataset_config")):
            self._with_dataset_config(fields)
        else:
            self._metadata(fields)
        self._set("enable_bucket", True, "enable_bucket")  # kohya_ss passes it to every run
        self._finetune_text_encoder()

    def _with_dataset_config(self, fields: dict[str, Any]) -> None:
        detail = msg(
            "gui.kohya.ft_dataset_config",
            "a dataset config is set: kohya_ss skips the metadata steps and sd-scripts reads the images from the "
            "dataset config (in_json and train_data_dir are ignored)",
        )  # fmt: skip
        for key, value in fields.items():
            self._report_if_set(key, plain(value), "not_used", detail, plain(DATASET_FIELDS[key]))

    def _metadata(self, fields: dict[str, Any]) -> None:
        images, folder = str(fields["image_folder"]).strip(), str(fields["train_dir"]).strip()
        self._set("train_data_dir", images, "image_folder")
        captions = _join(folder, str(fields["caption_metadata_filename"]).strip())
        latents = _join(folder, str(fields["latent_metadata_filename"]).strip())
        in_json = latents if str(fields["use_latent_files"]).strip() == "Yes" else captions
        if not folder:
            self._report("train_dir", "", "invalid", msg(
                "gui.kohya.ft_no_train_dir",
                "empty: kohya_ss would read the metadata from /{name}; in_json is left out, set it to your metadata file",
                name=os.path.basename(in_json),
            ))  # fmt: skip
        else:
            self._set("in_json", in_json, "train_dir")
            self.warnings.append(msg(
                "gui.kohya.ft_in_json", "train_dir, use_latent_files {use} -> in_json = {path}, the metadata kohya_ss "
                "trained from",
                use=fields["use_latent_files"], path=in_json,
            ))  # fmt: skip
        full_path = ["--full_path"] if _checked(fields["full_path"]) else []
        if _checked(fields["create_caption"]):
            extension = str(self.data.get("caption_extension") or "").strip() or ".caption"
            argv = ["merge_captions_to_metadata", images, captions, "--caption_extension", extension, *full_path]
            self._report("create_caption", True, "prepare", msg(
                "gui.kohya.ft_merge_captions",
                "kohya_ss merged the captions into {path} before training; do it with this trainer's tool (the "
                "Fine-tuning page's metadata workflow, or from the repo with the venv active):\n    {command}",
                path=captions, command=_tool_command(argv),
            ))  # fmt: skip
        if _checked(fields["create_buckets"]):
            self._report("create_buckets", True, "prepare", msg(
                "gui.kohya.ft_prepare_latents",
                "kohya_ss bucketed the images and cached their latents into {path} before training; do it with this "
                "trainer's tool (the Fine-tuning page's metadata workflow, or from the repo with the venv active):"
                "\n    {command}",
                path=latents, command=_tool_command(self._latents_argv(fields, images, captions, latents, full_path)),
            ))  # fmt: skip
        elif not is_empty(plain(fields["batch_size"])) and plain(fields["batch_size"]) != 1:
            detail = msg("gui.kohya.ft_buckets_off", "used only to make the latent metadata (create_buckets), which is off")
            self._report("batch_size", fields["batch_size"], "not_used", detail)

    def _latents_argv(
        self, fields: dict[str, Any], images: str, captions: str, latents: str, full_path: list[str]
    ) -> list[str]:
        precision = str(self.data.get("mixed_precision") or "no")
        if self.checkbox == SDXL_CHECKBOX and _checked(self.data.get("sdxl_no_half_vae")):
            precision = "no"  # kohya_ss: "Using mixed_precision = no because no half vae is selected"
        argv = [
            "prepare_buckets_latents", images, captions, latents, str(self.data.get("pretrained_model_name_or_path") or ""),
            "--batch_size", str(plain(fields["batch_size"])), "--max_resolution", str(self.data.get("max_resolution") or "512,512"),
            "--min_bucket_reso", str(self.data.get("min_bucket_reso") or 256),
            "--max_bucket_reso", str(self.data.get("max_bucket_reso") or 1024), "--mixed_precision", precision, *full_path,
        ]  # fmt: skip
        # Ours besides kohya_ss's: the model check wants --v2 for SD 2.x, and training with flip_aug needs both sides.
        if _checked(self.data.get("v2")) and self.checkbox is None:
            argv.append("--v2")
        if _checked(self.data.get("flip_aug")):
            argv.append("--flip_aug")
        return argv

    def _finetune_text_encoder(self) -> None:
        """The rates kohya_ss passes to this command (learning_rate_te unless SDXL, te1/te2 for SDXL); each is
        used only with train_text_encoder on."""
        sdxl = self.checkbox == SDXL_CHECKBOX
        trains = _checked(self.data.get("train_text_encoder"))
        zero_passed = V26_MARK in self.data
        for key in TE_RATES:
            value = plain(self._take(key))
            if (key == "learning_rate_te") == sdxl:
                detail = (msg("gui.kohya.ft_te_rate_sdxl", "kohya_ss passes it only without SDXL") if sdxl
                          else msg("gui.kohya.ft_te_rate_not_sdxl", "kohya_ss passes it only for SDXL"))  # fmt: skip
                self._report_if_set(key, value, "not_used", detail, KOHYA_TE_RATE)
            elif key not in self.schema:  # flux_train, sd3_train
                self._set(key, value, key)  # reported with the reason
            elif not trains:
                detail = msg("gui.kohya.ft_te_off", "train_text_encoder is off, so no text encoder trains")
                self._report_if_set(key, value, "not_used", detail, KOHYA_TE_RATE)
            elif zero_passed and value == 0:
                self._set(key, 0.0, key, explicit=True)
                self.warnings.append(msg(
                    "gui.kohya.ft_te_rate_zero",
                    "{key} = 0: kohya_ss v26 passes it (older versions left it out, so sd-scripts used learning_rate); "
                    "this text encoder stays frozen",
                    key=key,
                ))  # fmt: skip
            else:
                self._set(key, value, key)

    def _flip_note(self, epoch: Any) -> str | None:
        """What the report says of `epoch` (turned into max_train_epochs) when kohya_ss halved its steps."""
        if not _checked(self.data.get("flip_aug")) or not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
            return None
        return msg(
            "gui.kohya.ft_flip_halves",
            "flip_aug with epoch {epoch}: kohya_ss halved the steps it computed from the images (it counts mirrored "
            "images as copies, but flip_aug mirrors at random and adds none), so it trained about {half} epochs; "
            "this import trains max_train_epochs = {epoch}. Set it to {half} to train as kohya_ss did",
            epoch=show(epoch), half=show(epoch / 2 if epoch % 2 else epoch // 2),
        )  # fmt: skip


def _tool_command(argv: list[str]) -> str:
    """`python -m backend.tools.<tool> ...`, quoted for this system's shell."""
    full = ["python", "-m", f"backend.tools.{argv[0]}", *argv[1:]]
    return format_cmd(full) if os.name == "nt" else format_bash(full)
