"""Preflight checks of the Textual Inversion commands, before a model is loaded.

The word must reach the text encoders: a run whose captions never hold it trains vectors that get no gradient
(sd-scripts starts it anyway and saves the initial vectors); that is refused here with what to do.
"""

from __future__ import annotations

import argparse

from backend.messages import msg
from backend.training.embedding_files import EMBEDDING_FORMATS
from backend.training.plan_view import PlanView


def check_embedding(args: argparse.Namespace, plan: PlanView) -> None:
    if args.save_model_as not in EMBEDDING_FORMATS:
        plan.errors.append(msg("preflight.ti.save_format", "--save_model_as {value}: an embedding is saved as one of "
                               "{formats}", value=args.save_model_as, formats=", ".join(EMBEDDING_FORMATS)))
    if args.use_object_template and args.use_style_template:
        plan.warnings.append(msg("preflight.ti.both_templates", "--use_object_template and --use_style_template are "
                                 "both on: the object templates are used (as in sd-scripts)"))
    if args.token_string and (" " in args.token_string.strip() or "," in args.token_string):
        plan.warnings.append(msg("preflight.ti.token_words", "--token_string '{token}' has spaces or commas: it is "
                                 "added as one token, which shuffled or comma-split captions cut apart; one made-up "
                                 "word is safer", token=args.token_string))
    if args.use_object_template or args.use_style_template:
        return
    found = (plan.report.get("dataset") or {}).get("captions_with_word")
    if not found or not found[1] or not args.token_string:
        return
    with_word, total = found
    if with_word == 0:
        plan.errors.append(msg(
            "preflight.ti.word_in_no_caption", "no caption of the {total} training images holds --token_string "
            "'{token}', so its vectors would learn nothing. Write the word into the captions (or the folder "
            "name's class tokens, or --caption_prefix), or train with --use_object_template or "
            "--use_style_template", total=total, token=args.token_string,
        ))
    elif with_word < total:
        plan.warnings.append(msg(
            "preflight.ti.word_in_some_captions", "{missing} of the {total} training images' captions do not hold "
            "--token_string '{token}'; those images train nothing", missing=total - with_word, total=total,
            token=args.token_string,
        ))
