"""The embedded trainer (see docs/architecture.md). Importing it stays light: nothing heavy here."""

import logging

# bitsandbytes (imported by diffusers and transformers whether or not an 8-bit optimizer is used) warns
# on every start that its optional CPU 4-bit kernel package `kernels` is missing and asks the user to
# install it. Nothing here uses that kernel; the 8-bit optimizers do not need it.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
