#!/usr/bin/env bash
# Set up playmill on a fresh machine: a virtual environment in .venv with the CPU build of torch installed
# first (so pip does not pull several GB of CUDA packages), then playmill itself (editable) with its test
# extras. Idempotent: rerunning it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  "$VPY" -m pip install --quiet torch==2.13.0
fi
"$VPY" -m pip install --quiet -e ".[test]"
# Mono's C# compiler checks the GTA V recorder mod against the ScriptHookVDotNet API stubs (tests/gta_bridge)
if ! command -v mcs >/dev/null 2>&1 || ! command -v mono >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mono-mcs mono-runtime >/dev/null) \
      || echo "warning: could not install mono-mcs/mono-runtime; the GTA V mod contract tests will fail" >&2
  else
    echo "warning: install mono-mcs and mono-runtime (Debian/Ubuntu) for the GTA V mod contract tests" >&2
  fi
fi
"$VPY" -c "import capture, playmill, imageio_ffmpeg; print('playmill set up in .venv (ffmpeg:', imageio_ffmpeg.get_ffmpeg_exe() + ')')"
