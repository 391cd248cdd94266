#!/usr/bin/env bash
# Build and check the playmill GTA V recorder mod with Mono's C# compiler (mcs), without the game.
#
#   gta_bridge/mod/build.sh OUT_DIR [SETTINGS_JSON] [SEED]
#       1. compiles stubs/ScriptHookVDotNet3Stubs.cs into OUT_DIR/build/ScriptHookVDotNet3.dll (API stand-in),
#       2. compiles the mod (PlaymillRecorder.cs, ShvdnWorld.cs, core/*.cs) against it: the compile check,
#       3. compiles core/*.cs + fake/*.cs (no ScriptHookVDotNet reference: the core is game-independent)
#          into OUT_DIR/build/PlaymillFakeRun.exe,
#       4. runs one session against the fake game with SETTINGS_JSON (default: scenario.example.json)
#          and writes it to OUT_DIR/<session_id>/ (behaviour.jsonl, ticks.csv, fake_frames.jsonl).
#          The session folder is printed on the last line.
#   gta_bridge/mod/build.sh --release PATH/TO/ScriptHookVDotNet3.dll OUT_DIR
#       builds OUT_DIR/PlaymillRecorder.dll against the real ScriptHookVDotNet v3 assembly (copy it and
#       PlaymillRecorder.json into "Grand Theft Auto V/scripts").
#
# Needs mcs and mono: apt-get install -y mono-mcs mono-runtime  (Debian/Ubuntu), or Mono for Windows/macOS.
# All C# is limited to C# 5 (-langversion:5) so the .NET Framework's own csc.exe builds it too.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v mcs >/dev/null 2>&1; then
  echo "build.sh: mcs (the Mono C# compiler) was not found; install it: apt-get install -y mono-mcs mono-runtime" >&2
  exit 127
fi
MCS=(mcs -nologo -langversion:5 -warnaserror+ -nowarn:618)
CORE=("$HERE"/core/*.cs)
MOD=("$HERE/PlaymillRecorder.cs" "$HERE/ShvdnWorld.cs")

if [[ "${1:-}" == "--release" ]]; then
  SHVDN="${2:?usage: build.sh --release PATH/TO/ScriptHookVDotNet3.dll OUT_DIR}"
  OUT="${3:?usage: build.sh --release PATH/TO/ScriptHookVDotNet3.dll OUT_DIR}"
  mkdir -p "$OUT"
  "${MCS[@]}" -target:library -r:"$SHVDN" -out:"$OUT/PlaymillRecorder.dll" "${MOD[@]}" "${CORE[@]}"
  cp "$HERE/scenario.example.json" "$OUT/PlaymillRecorder.json.example"
  echo "$OUT/PlaymillRecorder.dll"
  exit 0
fi

OUT="${1:?usage: build.sh OUT_DIR [SETTINGS_JSON] [SEED]}"
SETTINGS="${2:-$HERE/scenario.example.json}"
SEED="${3:-0}"
if ! command -v mono >/dev/null 2>&1; then
  echo "build.sh: mono (the runtime) was not found; install it: apt-get install -y mono-runtime" >&2
  exit 127
fi
BUILD="$OUT/build"
mkdir -p "$BUILD"
"${MCS[@]}" -target:library -out:"$BUILD/ScriptHookVDotNet3.dll" "$HERE/stubs/ScriptHookVDotNet3Stubs.cs"
"${MCS[@]}" -target:library -r:"$BUILD/ScriptHookVDotNet3.dll" -out:"$BUILD/PlaymillRecorder.dll" "${MOD[@]}" "${CORE[@]}"
"${MCS[@]}" -target:exe -out:"$BUILD/PlaymillFakeRun.exe" "${CORE[@]}" "$HERE"/fake/*.cs
mono "$BUILD/PlaymillFakeRun.exe" --settings "$SETTINGS" --out "$OUT" --seed "$SEED"
