"""Option definitions, one module per area; importing this package registers all of them.

Each module calls `backend.options.schema.declare(...)` for the options whose code exists.
New areas add a module here and an import line below.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
