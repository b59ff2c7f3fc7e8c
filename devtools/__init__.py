"""Development and test support, not user tools: tiny models with the real module names and key
layout (`python -m devtools.make_tiny_model`), for the tests, benchmarks and device checks."""
