"""kohya_ss GUI LoRA configs turned into run TOMLs: `importer` (the entry, files and report), `convert`
(the pass over the keys), `tables` and `network` (where each key and LoRA type goes), `values`.

`python -m gui.kohya_import CONFIG.json --toml OUT.toml` runs `importer.main` (see `__main__.py`).
"""
