"""The Textual Inversion steps of a kohya_ss config conversion, mixed into `convert._Converter` (which holds the
bookkeeping: `_take`, `_set`, `_report`, `_report_if_set`).

kohya_ss's Textual Inversion tab (`textual_inversion_gui.py: train_model`) starts sd-scripts'
train_textual_inversion.py, or sdxl_train_textual_inversion.py with its SDXL checkbox on. token_string,
init_word (the form starts it at "*"), num_vectors_per_token and weights (an embedding to go on training) keep
their names; its "template" dropdown becomes use_object_template / use_style_template. It saves the DreamBooth
tab's stop_text_encoder_training and no_token_padding too: the first is not passed, the second is passed but
neither TI script defines it, so sd-scripts never read it. The other keys are the LoRA tab's (value_steps.py),
without a network.
"""

from __future__ import annotations

from backend.messages import msg
from gui.kohya_import.values import is_empty, plain

# kohya_ss's "Template" dropdown -> the option it turns on ("caption": the captions, no option).
TEMPLATES = {"caption": None, "object template": "use_object_template", "style template": "use_style_template"}


class TextualInversionSteps:
    """The keys only kohya_ss's Textual Inversion tab saves, and the DreamBooth ones it saves without effect."""

    def _textual_inversion(self) -> None:
        self._template()
        if is_empty(self.data.get("init_word")):
            self.warnings.append(msg(
                "gui.kohya.ti_no_init_word",
                "init_word is empty (kohya_ss refuses to start without one): the new vectors start from "
                "transformers' initialisation of new token rows; give init_word (e.g. the class word) to start "
                "from a known word",
            ))  # fmt: skip
        detail = msg("gui.kohya.not_passed_for", "kohya_ss does not pass it to {command}", command=self.command)
        self._report_if_set("stop_text_encoder_training", plain(self.data.get("stop_text_encoder_training")),
                            "not_used", detail)  # fmt: skip
        detail = msg(
            "gui.kohya.ti_no_token_padding",
            "kohya_ss passes it, but sd-scripts' {command} does not define it (train_db's option), so it changed "
            "nothing",
            command=self.command,
        )  # fmt: skip
        self._report_if_set("no_token_padding", self.data.get("no_token_padding"), "not_used", detail)

    def _template(self) -> None:
        template = self._take("template")
        if is_empty(template):
            return  # older saves: captions
        if template not in TEMPLATES:
            choices = ", ".join(f'"{name}"' for name in TEMPLATES)
            self._report("template", template, "invalid", msg(
                "gui.kohya.ti_template_choices", "expected one of {choices}", choices=choices))
            return
        option = TEMPLATES[template]
        if option is not None:
            self._set(option, True, "template")
            self.warnings.append(msg(
                "gui.kohya.ti_template",
                'template = "{template}" -> {option}: the captions are not used, sd-scripts\' templates with the '
                "token are",
                template=template, option=option,
            ))  # fmt: skip
