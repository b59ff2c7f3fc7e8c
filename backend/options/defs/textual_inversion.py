"""Textual Inversion options (train_textual_inversion, sdxl_train_textual_inversion): sd-scripts' names and meanings.

The new token's embedding vectors are the only trained weights; --learning_rate is theirs.
"""

from typing import Any

from backend.messages import msg
from backend.options.schema import TEXTUAL_INVERSION_COMMANDS, Option, declare_all, declare_derived

declare_all(
    [
        Option(
            "token_string", "str", None, group="basic", commands=TEXTUAL_INVERSION_COMMANDS, required=True,
            help="The new word the embedding is trained for, written in the captions (or in the templates with "
            "--use_object_template/--use_style_template). It must not be a word the tokenizer knows already; "
            "with --num_vectors_per_token N, token_string1 ... token_stringN-1 are added too. Also the file's "
            "default name.",
        ),
        Option(
            "init_word", "str", None, group="basic", commands=TEXTUAL_INVERSION_COMMANDS,
            help="Word(s) whose embedding the new vectors start from (e.g. 'dog' for a dog, 'painting' for a "
            "style); repeated or cut to --num_vectors_per_token. Empty: transformers' initialisation of new "
            "token rows.",
        ),
        Option(
            "num_vectors_per_token", "int", 1, minimum=1, maximum=74, group="basic",
            commands=TEXTUAL_INVERSION_COMMANDS,
            range_reason=msg(
                "options.range_reason.num_vectors_per_token",
                "each vector takes one of the 75 tokens a prompt chunk holds, and 0 vectors train nothing "
                "(sd-scripts fails on both)",
            ),
            help="Embedding vectors the new word stands for (more: more capacity, fewer tokens left in prompts). "
            "Typical 1-8.",
        ),
        Option(
            "weights", "path", None, group="basic", commands=TEXTUAL_INVERSION_COMMANDS,
            help="An embedding file (.safetensors or .pt; A1111's format too) to continue training from. Its number "
            "of vectors must be --num_vectors_per_token.",
        ),
        Option(
            "use_object_template", "bool", False, group="dataset", commands=TEXTUAL_INVERSION_COMMANDS,
            help="Ignore the captions and train with sd-scripts' object templates ('a photo of a {}', ...), the "
            "token in place of {}.",
        ),
        Option(
            "use_style_template", "bool", False, group="dataset", commands=TEXTUAL_INVERSION_COMMANDS,
            help="Ignore the captions and train with sd-scripts' style templates ('a painting in the style of "
            "{}', ...), the token in place of {}.",
        ),
    ]
)


def _default_output_name(values: dict[str, Any]) -> dict[str, Any]:
    """sd-scripts names the embedding after its word when --output_name is not given."""
    if values.get("output_name") is None and values.get("token_string"):
        return {"output_name": values["token_string"]}
    return {}


declare_derived(TEXTUAL_INVERSION_COMMANDS, _default_output_name)
