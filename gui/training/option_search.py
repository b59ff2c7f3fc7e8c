"""Finding an option by name: the search box above a training form.

The box is a filterable dropdown listing every field of the tab as "label (flag)" (in the Japanese
UI also the English label, since guides name options either way), so typing any part of the label
or the flag name narrows the list. Picking one opens the section the field sits in, scrolls to it,
focuses it and highlights it for a moment; all of that runs in the browser (`JUMP_JS`). Each entry's
value is "<section element id> <field element id>": a closed section's fields are not in the page
until it opens, so the section is named up front. A field the form hides for the chosen model type
(an SDXL-only option under SD 1.x) or network type (a LyCORIS argument under Standard) cannot be
shown: `hidden_note` says which model or network types it belongs to, under the search box.

`search_entries` and `hidden_note` are pure (tested without a browser).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from backend.options.schema import GROUPS, Option, options_for
from gui.i18n import Translator
from gui.markdown_text import md_t
from gui.training.model_types import model_type_label
from gui.training.network_types import NETWORK_ARGS, NETWORK_TYPES
from gui.training.training_kinds import TrainingKind

JUMP_JS = """
(value) => {
  if (!value) return;
  const [sectionId, fieldId] = value.split(" ");
  const section = document.getElementById(sectionId);
  if (section) {
    const button = section.querySelector(":scope > .label-wrap");
    const content = section.querySelector(':scope > [data-testid="accordion-content"]');
    if (button && content && getComputedStyle(content).display === "none") button.click();
  }
  let tries = 0;
  const jump = () => {
    const field = document.getElementById(fieldId);
    if (!field || field.offsetParent === null) {
      if (tries++ < 40) setTimeout(jump, 50);
      return;
    }
    field.scrollIntoView({ block: "center" });
    const input = field.querySelector("input, textarea");
    if (input) input.focus({ preventScroll: true });
    field.classList.add("search-hit");
    setTimeout(() => field.classList.remove("search-hit"), 2500);
  };
  setTimeout(jump, 60);
}
"""


# Gradio's dropdown filters its list on keydown. Text typed through an input method (Japanese) arrives
# without one, so the list did not narrow to "学習率": after such input a keydown is sent on its behalf.
# Registered once per page (delegated: a tab's search box is rendered when the tab is first shown).
IME_FILTER_JS = """
() => {
  const refilter = (event) => {
    const box = event.target;
    if (!box.closest || !box.closest(".option-search") || event.isComposing) return;
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Unidentified", bubbles: true }));
  };
  document.addEventListener("input", refilter, true);
  document.addEventListener("compositionend", refilter, true);
}
"""


def entry_label(label: str, english: str, flag: str) -> str:
    return f"{label} / {english} ({flag})" if english != label else f"{label} ({flag})"


def search_entries(
    options: Mapping[str, Option],
    essentials: Sequence[str],
    t: Translator,
    id_prefix: str = "",
    extra: Iterable[tuple[str, str, str, str]] = (),
) -> list[tuple[str, str]]:
    """(shown text, "<section id> <field id>") for every field of a form built by
    `gui.training.schema_form.build_form` with these `options` and `essentials`, in page order.

    `extra` adds fields outside the schema form: (label, english label, flag, "<section id> <field id>").
    """
    english = t if t.language == "en" else Translator("en")
    first = [name for name in essentials if name in options]
    order = first + [name for group in GROUPS for name, o in options.items() if o.group == group and name not in first]
    entries = []
    for name in order:
        group = "essentials" if name in first else options[name].group
        value = f"{id_prefix}group_{group} {id_prefix}opt_{name}"
        entries.append((entry_label(t.option_label(name), english.option_label(name), name), value))
    entries += [(entry_label(label, english_label, flag), value) for label, english_label, flag, value in extra]
    return entries


def network_type_label(t: Translator, name: str) -> str:
    """A network type as the selector shows it (LyCORIS algorithms by their LyCORIS names)."""
    return t.t(f"ui.network.{name}") if "/" not in name else name


def hidden_note(value: str | None, model_type: str, network_type: str | None, kind: TrainingKind, t: Translator) -> str:
    """Why the field a search entry `value` names is not on the page with this model and network
    type, naming the types it belongs to (Markdown); "" when it is shown."""
    field_id = (value or "").partition(" ")[2]
    name = field_id.removeprefix(kind.elem("opt_"))
    if field_id.startswith(kind.elem("opt_")):
        commands = dict.fromkeys(kind.commands.values())
        if all(name in options_for(command) for command in commands):
            return ""  # every model type shows it
        owners = [m for m in kind.model_types if name in options_for(m.commands[kind.key])]
        if model_type in (m.name for m in owners):
            return ""
        label = f"{t.option_label(name)} ({name})"
        types = ", ".join(model_type_label(t, m) for m in owners)
        return md_t(t, "ui.search_other_model", option=label, types=types)
    netarg = kind.elem("netarg_")
    if kind.networks and field_id.startswith(netarg) and field_id.removeprefix(netarg) in NETWORK_ARGS:
        name = field_id.removeprefix(netarg)
        owners = [n for n, spec in NETWORK_TYPES.items() if name in spec.args]
        if network_type in owners:
            return ""
        label = f"{t.t(f'ui.netarg.{name}')} ({name})"
        return md_t(t, "ui.search_other_network", option=label, types=", ".join(network_type_label(t, n) for n in owners))
    return ""
