"""Textual Inversion: a new word's embedding vectors trained in an otherwise frozen model (sd-scripts'
train_textual_inversion and sdxl_train_textual_inversion).

The third training method on the shared loop (backend/training/method.py). As in sd-scripts, `--token_string`
tok and, with --num_vectors_per_token N, tok1 ... tok<N-1> are added to every tokenizer; each text encoder's
token-embedding matrix grows by N rows, which start as --init_word's vectors (or --weights'). The whole matrix
is the trained parameter (so gradient clipping and adaptive optimizers see what they see in sd-scripts), and after
every optimizer step the rows that existed before are put back: only the new rows change. A caption's `tok`
becomes "tok tok1 ... tok<N-1>" where it is encoded (`prompt_text`), for training and for sample prompts alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from backend.families import declaration
from backend.finite_weights import WeightProblems, check_weights
from backend.messages import msg
from backend.models.components import Components
from backend.training.distributed import check_in_sync
from backend.training.embedding_files import read_embedding, write_embedding
from backend.training.finetune_method import NETWORK_KEYS, text_encoder_names
from backend.training.method_options import EmbeddingConfig
from backend.training.run_errors import RunStopped

logger = logging.getLogger(__name__)

T = TypeVar("T")


def add_tokens(config: EmbeddingConfig, components: Components) -> list[list[int]]:
    """The new words added to every tokenizer and rows for them to every text encoder; their ids per encoder."""
    words = config.token_strings
    ids_per_encoder = []
    for index, (tokenizer, encoder) in enumerate(zip(components.tokenizers, components.text_encoders, strict=True)):
        known = set(tokenizer.get_vocab())
        if any(word in known for word in words) or tokenizer.add_tokens(words) != len(words):
            raise RunStopped(msg(
                "run.ti_token_exists", "--token_string {token}: the tokenizer (text encoder {index}) already knows "
                "'{token}' or one of {words}; choose a word it does not know, e.g. a made-up one such as "
                "'sks{token}'", token=config.token_string, index=index + 1, words=", ".join(words),
            ))
        ids = tokenizer.convert_tokens_to_ids(words)
        if ids != list(range(len(tokenizer) - len(words), len(tokenizer))):  # the rows kept are those before
            raise RunStopped(msg("run.ti_token_ids", "--token_string {token}: the tokenizer of text encoder {index} "
                                 "did not add {words} at its end (ids {ids}); choose another word",
                                 token=config.token_string, index=index + 1, words=", ".join(words), ids=ids))
        encoder.resize_token_embeddings(len(tokenizer))
        ids_per_encoder.append(ids)
    return ids_per_encoder


def init_word_ids(config: EmbeddingConfig, components: Components) -> list[list[int]] | None:
    """--init_word's token ids per tokenizer (None: no --init_word)."""
    if not config.init_word:
        return None
    found = []
    for index, tokenizer in enumerate(components.tokenizers):
        ids = tokenizer.encode(config.init_word, add_special_tokens=False)
        if not ids:
            raise RunStopped(msg("run.ti_init_word_empty", "--init_word '{word}' gives no tokens; give a word, e.g. "
                                 "the kind of thing the images show", word=config.init_word))
        if len(ids) > 1 and len(ids) != config.num_vectors_per_token:
            logger.info(msg("run.ti_init_word_repeated", "--init_word is {count} tokens for text encoder {index} and "
                            "--num_vectors_per_token is {vectors}: its vectors are repeated or cut to fit",
                            count=len(ids), index=index + 1, vectors=config.num_vectors_per_token))
        found.append(ids)
    return found


class EmbeddingTraining:
    lora = False  # the files are embeddings (modelspec architecture ".../textual-inversion")
    network_args: dict[str, Any] = {}
    train_text_encoder = True  # gradients flow through the frozen text encoders into the new rows
    ema = None

    def __init__(self, config: EmbeddingConfig, components: Components) -> None:
        self.config = config
        self.components = components
        self.keys = declaration(components.family).embedding_keys
        init_ids = init_word_ids(config, components)
        self.ids = add_tokens(config, components)
        self.first_new = [ids[0] for ids in self.ids]
        names = text_encoder_names(len(components.text_encoders))
        self.embeddings = torch.nn.ModuleDict(
            {name: encoder.get_input_embeddings() for name, encoder in zip(names, components.text_encoders, strict=True)})
        self._initialise(init_ids)
        for module in (components.unet, components.vae, *components.text_encoders):
            module.requires_grad_(False)
        for embedding in self.embeddings.values():
            embedding.weight.requires_grad_(True)
        self._kept_rows: list[torch.Tensor] = []
        logger.info(msg("run.ti_tokens", "Textual Inversion of '{token}': {count} vector(s) ({words})",
                        token=config.token_string, count=config.num_vectors_per_token,
                        words=" ".join(config.token_strings)))

    def _initialise(self, init_ids: list[list[int]] | None) -> None:
        with torch.no_grad():
            for index, (weight, ids) in enumerate(zip(self._weights(), self.ids, strict=True)):
                if init_ids is not None:
                    source = init_ids[index]
                    for position, token_id in enumerate(ids):
                        weight[token_id] = weight[source[position % len(source)]]
            if self.config.weights:
                self._load_weights(self.config.weights)

    def _load_weights(self, path: str) -> None:
        for index, (weight, ids, vectors) in enumerate(
                zip(self._weights(), self.ids, read_embedding(path, self.keys), strict=True)):
            if tuple(vectors.shape) != (len(ids), weight.shape[1]):
                raise RunStopped(msg(
                    "run.ti_weights_shape", "--weights {path} holds {count} vector(s) of width {width} for text "
                    "encoder {index}; this run trains {vectors} of width {expected} (--num_vectors_per_token, and "
                    "an embedding of this model type)", path=path, count=vectors.shape[0], width=vectors.shape[1],
                    index=index + 1, vectors=len(ids), expected=weight.shape[1],
                ))
            weight[ids[0]: ids[-1] + 1] = vectors.to(weight.dtype)
        logger.info(msg("run.ti_weights_loaded", "embedding vectors loaded from {path}", path=path))

    def _weights(self) -> list[torch.Tensor]:
        return [embedding.weight for embedding in self.embeddings.values()]

    def keep_original_rows(self) -> None:
        """The rows that must not change, copied where the model now is (call after it is placed)."""
        self._kept_rows = [weight.detach()[:first].clone() for weight, first in zip(self._weights(), self.first_new, strict=True)]

    def vectors(self) -> dict[str, torch.Tensor]:
        """What a file holds: the new rows of each text encoder under the family's key."""
        return {key: weight.detach()[ids[0]: ids[-1] + 1]
                for key, weight, ids in zip(self.keys, self._weights(), self.ids, strict=True)}

    def prompt_text(self, text: str) -> str:
        """sd-scripts' replacement: with several vectors, the word stands for all of its tokens."""
        if self.config.num_vectors_per_token == 1:
            return text
        return text.replace(self.config.token_string, " ".join(self.config.token_strings))

    # --- what the loop asks -------------------------------------------------------------------
    @property
    def trained_module(self) -> torch.nn.Module:
        return self.embeddings

    def param_groups(self) -> tuple[list[dict[str, Any]], list[str]]:
        return [{"params": self._weights(), "lr": self.config.learning_rate}], ["embedding"]

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [embedding.weight for embedding in self.embeddings.values()]

    def forward(self, call: Callable[[], T]) -> T:
        return call()

    def on_epoch_start(self) -> None:
        pass

    def on_step_start(self, step: int) -> None:
        pass

    def after_optimizer_step(self, device: torch.device) -> dict[str, float]:
        """The rows of the words the tokenizer knew are put back (the optimizer moved those with gradients)."""
        with torch.no_grad():
            for weight, kept in zip(self._weights(), self._kept_rows, strict=True):
                weight[: kept.shape[0]] = kept
        return {}

    def state_objects(self) -> list[Any]:
        return [NewVectors(self)]

    def sampling_modules(self) -> tuple[torch.nn.Module, ...]:
        return ()

    def file_metadata(self, metadata: dict[str, str]) -> dict[str, str]:
        """sd-scripts writes modelspec's "<architecture>/textual-inversion"; the training record stays, without
        network keys, with the word and its vectors."""
        record = {key: value for key, value in metadata.items() if key not in NETWORK_KEYS}
        if "modelspec.architecture" in record:
            record["modelspec.architecture"] += "/textual-inversion"
        record["ss_token_string"] = self.config.token_string
        record["ss_num_vectors_per_token"] = str(self.config.num_vectors_per_token)
        if self.config.init_word:
            record["ss_init_word"] = self.config.init_word
        return record

    def before_save(self, accelerator: Any) -> None:
        check_in_sync(accelerator, self.embeddings)

    def written_paths(self, path: Path) -> list[Path]:
        return [path]

    def weight_problems(self, dtype: torch.dtype | None) -> WeightProblems:
        return check_weights(self.vectors(), dtype)

    def saved_bytes(self, dtype: torch.dtype | None) -> int:
        return sum(t.numel() * (dtype or t.dtype).itemsize for t in self.vectors().values())

    def save(self, path: Path, dtype: torch.dtype | None, metadata: dict[str, str] | None) -> Path:
        return write_embedding(path, self.vectors(), dtype, metadata if path.suffix == ".safetensors" else None)


class NewVectors:
    """The trained rows alone in accelerate's state (not the whole matrices: the kept rows are the model's)."""

    def __init__(self, method: EmbeddingTraining) -> None:
        self.method = method

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: value.clone() for key, value in self.method.vectors().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for key, weight, ids in zip(self.method.keys, self.method._weights(), self.method.ids, strict=True):
                weight[ids[0]: ids[-1] + 1] = state[key].to(weight.device, weight.dtype)
