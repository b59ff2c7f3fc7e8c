"""A command for tests/test_forked_commands.py: prints what it was started with, then exits with argv[1]'s code
(after sleeping argv[2] seconds, if given)."""

import json
import os
import sys
import time

if __name__ == "__main__":
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "probe": os.environ.get("KOHYA_PROBE"),
                      "main": __name__, "file": os.path.basename(sys.argv[0]), "parent": os.getppid(),
                      "group": os.getpgid(0), "preloaded": "torch" in sys.modules,
                      "accelerate": os.environ.get("ACCELERATE_MIXED_PRECISION")}), flush=True)  # fmt: skip
    print("to stderr", file=sys.stderr)
    if len(sys.argv) > 2:
        time.sleep(float(sys.argv[2]))
    sys.exit(int(sys.argv[1]))
