"""What a model family says about itself without torch: the facts the GUI, the option schema,
preflight and metadata need before (or without) loading a model.

One declaration per model type a user picks (SD 1.x, SD 2.x, SDXL); several may share one torch-side
implementation (SD 1.x and 2.x share `backend.families.stable_diffusion`). The torch side is
`backend.families.seam.ModelFamily`, found by `implementation` (a module with a `FAMILY` object).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from backend.families.activation_memory import ActivationMeasurement
from backend.families.detection import Detection

IMPL_STABILITY_AI = "https://github.com/Stability-AI/generative-models"
IMPL_DIFFUSERS = "diffusers"


@dataclass(frozen=True)
class PredictionFacts:
    """Identifiers that depend on what the model predicts (epsilon or v)."""

    base_model_version: str  # ss_base_model_version, as sd-scripts writes it
    architecture: str  # modelspec.architecture (without "/lora")
    native_resolution: int  # the side of the square images the base model was trained on
    config_set: str  # the shipped configs of the real model (<FamilyDeclaration.configs_folder>/<config_set>)


class HubTokenizer(NamedTuple):
    """Where a single file's tokenizer comes from (a single file has none): as sd-scripts loads it."""

    hub_id: str
    subfolder: str | None = None
    pad_with_bang: bool = False  # pads with "!" (id 0), as the real OpenCLIP tokenizers do
    # CLIP BPE (CLIPTokenizer), T5 Unigram (T5TokenizerFast) or Llama 3 byte-level BPE (LlamaTokenizerFast)
    kind: Literal["clip", "t5", "llama"] = "clip"


@dataclass(frozen=True)
class OriginalTextEncoder:
    """One text encoder in the original (Stability) single-file layout."""

    prefix: str  # its keys' prefix ("cond_stage_model.transformer.")
    layout: Literal["hf", "open_clip"]  # transformers' CLIP names behind the prefix, or OpenCLIP's
    # The file keeps the block the diffusers encoder drops (the last of OpenCLIP's, which SD 2.x never
    # used) and an unused text projection; a save writes them back (backend/models/keymap_text.py).
    keeps_unused_parts: bool = False


@dataclass(frozen=True)
class FamilyDeclaration:
    name: str  # the id: Components.family, presets' "model_type", the schema dump's model types
    label: str  # what users call it ("SD 1.x"); also in messages
    implementation: str  # the module holding the torch-side `FAMILY` (a ModelFamily)
    # Training kind ("lora", "finetune", "dreambooth"; "video") -> the command that trains this family
    # (sd-scripts' script names).
    commands: Mapping[str, str]
    epsilon: PredictionFacts
    v_prediction: PredictionFacts | None = None  # None: the family has no v-prediction variant of its own
    # The real model's shapes, which tell a file's family when nothing else does.
    text_encoder_widths: tuple[int, ...] = ()  # hidden size of each text encoder, in diffusers order
    cross_attention_width: int = 0  # the denoiser's cross-attention (context) width
    # Component folders of a diffusers pipeline, in text-encoder order; the denoiser's folder ("unet" for
    # U-Net families, "transformer" for DiT families such as FLUX.1). ArchConfigs.unet holds its config either way.
    denoiser_folder: str = "unet"
    text_encoder_folders: tuple[str, ...] = ("text_encoder",)
    tokenizer_folders: tuple[str, ...] = ("tokenizer",)
    # The diffusers pipeline class its folders name in model_index.json begins with ("StableDiffusionXL").
    pipeline_class_prefix: str = ""
    # Its text encoders in the original single-file layout, and their tokenizers, in text-encoder order. Empty
    # where the family's single files hold the denoiser alone (FLUX.1: --clip_l, --t5xxl and --ae are files of
    # their own).
    original_text_encoders: tuple[OriginalTextEncoder, ...] = ()
    hub_tokenizers: tuple[HubTokenizer, ...] = ()
    # Parts its single files do not hold, each passed as a file by a flag of its own (sd-scripts' names,
    # without "--") -> the diffusers component folder it replaces (FLUX.1: {"ae": "vae", "clip_l": ...}).
    part_flags: Mapping[str, str] = field(default_factory=dict)
    # Parts its files always hold that a flag may replace with a file of its own (sd-scripts' --vae for SD 1.x/2.x
    # and SDXL) -> the diffusers component folder it replaces. Never required, unlike `part_flags`.
    replaceable_parts: Mapping[str, str] = field(default_factory=dict)
    # Its single files may hold those parts themselves (SD 3.5: text encoders and VAE inside or not); the
    # loader then says which are missing, preflight does not require the flags.
    parts_may_be_inside: bool = False
    # Where the folders of its config sets lie (`PredictionFacts.config_set`), and how its files are told.
    configs_folder: Path | None = None
    detection: Detection | None = None
    # Its commands take --cache_text_encoder_outputs (sd-scripts: the sdxl_*, flux_* and sd3_* scripts).
    text_encoder_output_cache: bool = False
    # Its commands take --weighted_captions: A1111-style "(word:1.2)" weights on its CLIP text encoders' outputs
    # (sd-scripts: the SD and SDXL scripts; its FLUX.1 tokenizer has no weighted form, its SD3 scripts refuse it).
    weighted_captions: bool = False
    # Option values choosing this model type implies (sd-scripts has no model-type flag: SD 2.x is --v2).
    implied_options: Mapping[str, Any] = field(default_factory=dict)
    # What its commands train against: "ddpm" (noise or v prediction on a DDPM schedule) or
    # "flow_matching". The option schema scopes the options only one objective reads by it.
    objective: Literal["ddpm", "flow_matching"] = "ddpm"
    # Options (sd-scripts' flag names) that only this family's commands take, such as separately
    # stored model parts; the schema gives each of them exactly the commands of the families naming it.
    own_options: tuple[str, ...] = ()
    # Which LoRA key layout its networks use: families sharing one (SD 1.x/2.x) share LoRA files.
    network_layout: str = ""
    network_label: str = ""  # the models that layout fits, in messages ("SD 1.x/2.x")
    # Network key names only this layout has (sd-scripts' names; backend/networks/naming.py).
    network_key_prefixes: tuple[str, ...] = ()
    # sd-scripts writes LoRAs of some families in Stability's layout, of others in diffusers'.
    lora_implementation: str = IMPL_DIFFUSERS
    checkpoint_implementation: str = IMPL_STABILITY_AI  # modelspec.implementation of a whole model
    # modelspec.prediction_type (epsilon / v) is written; sd-scripts leaves it out for flow-matching models.
    records_prediction_type: bool = True
    # Textual Inversion files: the key of each text encoder's vectors, in text-encoder order (A1111, ComfyUI and
    # diffusers read these names: SD 1.x/2.x "emb_params", SDXL "clip_l" and "clip_g"). Empty: no TI command.
    embedding_keys: tuple[str, ...] = ()
    # Options sd-scripts records as ss_<name> for this family's runs (its update_metadata).
    metadata_options: tuple[str, ...] = ()
    # A video family (commands {"video": "train_video"}): finetrainers' --model_name for it, and its VAE's
    # compression: a clip of F frames needs (F - 1) % temporal_compression == 0 (F = 1: an image), its
    # height and width multiples of spatial_compression. Zero / empty for the image families.
    video_model_name: str = ""
    temporal_compression: int = 0
    spatial_compression: int = 0
    # Validation videos may start from an image (finetrainers' `image_path` in --validation_dataset_file): the
    # family's pipeline conditions on a first frame (LTX-Video: LTXImageToVideoPipeline); else such rows are refused.
    image_to_video: bool = False
    # The family's loading reads a single transformer file in its original names given as --transformer_id
    # (backend/video/model_view.py: from_single_file with the folder's config; tested per family with a file in
    # those names).
    single_file_transformer: bool = False
    # What its denoiser keeps for a training step's backward, measured (backend/families/activation_memory.py); a
    # family of the same design may share another's. None: the memory planner leaves activations out and says so.
    activations: ActivationMeasurement | None = None

    @property
    def is_video(self) -> bool:
        return bool(self.video_model_name)

    @property
    def model_files(self) -> tuple[str, ...]:
        """The options naming its parts given as files of their own (FLUX.1: clip_l, t5xxl, ae; SD: vae)."""
        return tuple(self.part_flags) + tuple(name for name in self.replaceable_parts if name not in self.part_flags)

    def facts(self, v_prediction: bool) -> PredictionFacts:
        return self.v_prediction if v_prediction and self.v_prediction is not None else self.epsilon

    def base_model_version(self, v_prediction: bool) -> str:
        return self.facts(v_prediction).base_model_version

    def architecture(self, v_prediction: bool, lora: bool) -> str:
        arch = self.facts(v_prediction).architecture
        return f"{arch}/lora" if lora else arch

    def implementation_url(self, lora: bool) -> str:
        """modelspec.implementation: whole checkpoints are written in the layout of `checkpoint_implementation`."""
        return self.lora_implementation if lora else self.checkpoint_implementation

    def native_resolution(self, v_prediction: bool) -> int:
        return self.facts(v_prediction).native_resolution

    def as_json(self) -> dict[str, Any]:
        """The model type as the schema dump carries it to the GUI."""
        return {"name": self.name, "label": self.label, "commands": dict(self.commands),
                "implied_options": dict(self.implied_options), "objective": self.objective}
