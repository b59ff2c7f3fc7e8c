"""Every command-line tool's flags, declared once: the tool's argparse parser and the GUI's tool form
both read these declarations, so a default, a choice or a required flag cannot differ between them.

- `spec.py`: what a declaration holds (`Flag`, `Range`, `ToolFlags`), checked when it is made;
- `parser.py`: the one reader that turns a declaration into an argparse parser (the only
  `add_argument` call of the tools covered) and checks the declared ranges after parsing;
- `lora.py`, `metadata.py`, `captioning.py`, `dataset.py`: the declarations, one module per tool
  group, each listing its tools in `TOOLS`.

The GUI turns a declaration into its form (`gui/tools/tool_specs.tool_spec`): labels and help from the
catalogues under `ui.toolarg.<tool>.<flag>` / `ui.toolhelp.<tool>.<flag>`, the `help` here is the
command line's `--help`. Flag names and defaults are sd-scripts' wherever the tool mirrors one of
its scripts (networks/*.py, finetune/*.py): scripts written for sd-scripts keep working.

Standard library only (plus the torch-free message and check helpers): a tool reads its
declaration before anything heavy, and the GUI process never imports torch.
"""
