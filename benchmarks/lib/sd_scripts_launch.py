"""Start an sd-scripts script with its own Python: `python sd_scripts_launch.py DIR/train_network.py ARGS...`.

Runs the script as `__main__` from its folder, unchanged. One workaround, applied only when needed:
PyPI's torchvision wheels are CUDA builds, and on a CPU-only torch their compiled ops cannot load,
so `import torchvision` fails while registering them. sd-scripts only uses `torchvision.transforms`
(pure Python), so in that case the two op-registration modules are replaced by empty ones.
This file imports nothing from this repository: it runs inside sd-scripts' environment.
"""

from __future__ import annotations

import os
import runpy
import sys
import types

REGISTRATIONS = ("torchvision._meta_registrations", "torchvision._autograd_registrations")


def import_torchvision() -> None:
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, OSError) as error:
        print(f"sd_scripts_launch: torchvision ops unavailable ({error}); using its pure-Python parts only",
              file=sys.stderr)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        for name in REGISTRATIONS:
            sys.modules[name] = types.ModuleType(name)
        import torchvision  # noqa: F401


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python sd_scripts_launch.py SCRIPT [ARGS...]")
    script = os.path.abspath(sys.argv[1])
    sys.argv = [script, *sys.argv[2:]]
    sys.path.insert(0, os.path.dirname(script))
    import_torchvision()
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
