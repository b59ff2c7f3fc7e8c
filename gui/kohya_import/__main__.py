"""`python -m gui.kohya_import CONFIG.json --toml OUT.toml`: see gui/kohya_import/importer.py."""

import sys

from gui.kohya_import.importer import main

sys.exit(main())
