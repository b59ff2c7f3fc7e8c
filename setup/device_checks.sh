#!/usr/bin/env bash
# The GPU checks in one command (docs/gpu-checks.md): install the carried wheels (.whl/, made by
# setup/prepare_device_wheels.py) into $DEVICE_SITE, put them first on PYTHONPATH, then run
# benchmarks/device_checks.py, which writes results.json and checks.log under $OUT.
#   on the lent GPU machine:  bash setup/device_checks.sh
#   dry run here on the CPU:  PYTHON=venv/bin/python bash setup/device_checks.sh --cpu
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${PYTHON:-python3}"
export OUT="${OUT:-/tmp/device-checks-out}"
export DEVICE_SITE="${DEVICE_SITE:-/tmp/site}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
{
  echo "== $(date -u +%FT%TZ) $(uname -m), $("$py" --version 2>&1) at $(command -v "$py")"
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "== installing $(ls .whl/*.whl | wc -l) carried wheels into $DEVICE_SITE"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$DEVICE_SITE" \
      .whl/*.whl || echo "!! pip install of the carried wheels failed: the checks run on, and say what is missing"
  else
    echo "!! no .whl/*.whl: run setup/prepare_device_wheels.py here and name .whl in carry"
  fi
} 2>&1 | tee -a "$OUT/checks.log"
export PYTHONPATH="$DEVICE_SITE${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" benchmarks/device_checks.py --out "$OUT" "$@"
