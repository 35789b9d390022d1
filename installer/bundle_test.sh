#!/usr/bin/env bash
# `make bundle-test`: the frozen bundle works on its own, outside the source tree, with no Python.
#
# Unpacks dist/HoechstScore-*-linux-*.tar.gz (built first when missing, or when BUNDLE_REBUILD=1)
# into a temporary folder, then runs each command with `env -i`: no PYTHONPATH, no venv, HOME in the
# temporary folder (so data and settings land in fresh platformdirs folders: a first start), and a
# PATH whose only folder holds links to the system's programs *minus every python*. Checks:
#   - `hoechstscore --bundle-info`: sys.executable is inside the unpacked bundle; no GPU, no error;
#   - `hoechstscore-core --help`, `hoechstscore-retrain --help`;
#   - `hoechstscore-core phantom` makes a small slide, `hoechstscore-core analyse` finds cells in it,
#     `hoechstscore-core cohort` scores it on a Dask worker process (frozen multiprocessing);
#   - `hoechstscore --demo --screenshot` offscreen: the PNG is not blank (colours and contrast);
#   - install.sh into the temporary HOME, the installed command runs, uninstall.sh leaves nothing.
# Usage: installer/bundle_test.sh [PYTHON]  (PYTHON, the build environment, builds the bundle, reads
# the PNG's pixels and runs the same analysis from the source tree: cells.csv must be identical)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
archive() { ls -t dist/HoechstScore-*-linux-"$(uname -m)".tar.gz 2>/dev/null | head -1; }
if [ -z "$(archive)" ] || [ "${BUNDLE_REBUILD:-0}" = 1 ]; then
    installer/build.sh "$PY"
fi
ARCHIVE="$(pwd)/$(archive)"
PNGCHECK="$(pwd)/installer/png_check.py"
PYABS="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
ROOT="$(pwd)"

T="$(mktemp -d "${TMPDIR:-/tmp}/hoechstscore-bundle-test.XXXXXX")"
trap 'rm -rf "$T"' EXIT
tar -xzf "$ARCHIVE" -C "$T"
B="$(echo "$T"/HoechstScore-*)"
mkdir -p "$T/home" "$T/bin" "$T/work"
for d in /usr/bin /bin; do
    for f in "$d"/*; do
        case "$(basename "$f")" in python*|pip*|pydoc*|idle*) continue ;; esac
        [ -e "$T/bin/$(basename "$f")" ] || ln -s "$f" "$T/bin/$(basename "$f")"
    done
done
run() {  # a bundled command in an empty environment
    (cd "$T/work" && env -i HOME="$T/home" PATH="$T/bin" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@")
}
steps=0
fail() { echo "bundle-test FAILED: $*" >&2; echo "bundle-test: $((steps - 1)) passed, 1 failed"; exit 1; }
step() { steps=$((steps + 1)); echo "== $*"; }
trap 'echo "bundle-test: $((steps - 1)) passed, 1 failed (a command of step $steps failed)"' ERR
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

step "no python reachable on the test PATH"
if run sh -c 'command -v python3 || command -v python'; then fail "a python is on the test PATH"; fi

step "bundle-info"
info="$(run "$B/hoechstscore" --bundle-info)"; echo "$info"
grep -q "^sys.executable: $B/" <<<"$info" || fail "sys.executable is not inside the bundle"
grep -q "^frozen: True" <<<"$info" || fail "not running frozen"
if [ "$(cut -d' ' -f2 "$B/VERSION")" = cpu ]; then
    grep -q "^cuda available: False" <<<"$info" || fail "the CPU build reports CUDA"
fi

step "hoechstscore-core --help, hoechstscore-retrain --help"
help_core="$(run "$B/hoechstscore-core" --help)"
grep -q analyse <<<"$help_core" || fail "hoechstscore-core --help lists no analyse"
grep -q "^usage: hoechstscore-core " <<<"$help_core" || fail "hoechstscore-core --help names another program (no python here)"
run "$B/hoechstscore-retrain" --help | grep -q "^usage: hoechstscore-retrain " || fail "hoechstscore-retrain --help"

step "phantom + analyse"
run "$B/hoechstscore-core" phantom --size 1024 --seed 3 --out "$T/work/phantom"
t0=$(now_ms)
run "$B/hoechstscore-core" analyse "$T/work/phantom/hoechst.ome.tif" --out "$T/work/analysis" \
    --device cpu --precision fp32
cells=$(($(wc -l < "$T/work/analysis/cells.csv") - 1))
echo "analyse: $cells cells in $(since "$t0") s"
[ "$cells" -gt 0 ] || fail "analyse found no cells in the phantom"
# The same analysis from the source tree must find the same cells (same model, CPU, fp32).
(cd "$T/work" && PYTHONPATH="$ROOT" "$PYABS" -m core analyse phantom/hoechst.ome.tif --out source-analysis \
    --device cpu --precision fp32 >/dev/null 2>&1) || fail "the source tree's analyse failed"
cmp "$T/work/analysis/cells.csv" "$T/work/source-analysis/cells.csv" \
    || fail "the bundle's cells.csv differs from the source tree's"
echo "cells.csv identical to the source tree's analysis"

step "cohort: Dask worker processes started by the frozen program, cohort.parquet"
printf 'case_id,slide\nP1,phantom/hoechst.ome.tif\n' > "$T/work/manifest.csv"
run "$B/hoechstscore-core" cohort "$T/work/manifest.csv" --out "$T/work/cohort" --workers 1 \
    --device cpu --precision fp32
[ -s "$T/work/cohort/cohort.parquet" ] || fail "cohort wrote no cohort.parquet"
grep -q "^P1,done," "$T/work/cohort/cohort.csv" || fail "cohort.csv: P1 is not done"

step "app: --demo --screenshot (offscreen, first start)"
t0=$(now_ms)
run "$B/hoechstscore" --demo --screenshot "$T/work/demo.png" --size 1024
echo "demo screenshot in $(since "$t0") s (first start: demo slide made, analysed, scored)"
"$PYABS" "$PNGCHECK" "$T/work/demo.png" || fail "the screenshot is blank"
[ -d "$T/home/.local/share/HoechstScore" ] || fail "no data in the user's data folder (platformdirs)"
t0=$(now_ms)
run "$B/hoechstscore" --demo --screenshot "$T/work/demo2.png" --size 1024
echo "demo screenshot again in $(since "$t0") s (demo case re-used)"
[ -n "${BUNDLE_TEST_KEEP:-}" ] && cp "$T/work/demo.png" "$BUNDLE_TEST_KEEP"

step "install.sh / uninstall.sh (into the test HOME)"
(cd "$T/home" && find . | sort) > "$T/before.txt"
run "$B/install.sh"
run "$T/home/.local/bin/hoechstscore-core" --version | grep -q HoechstScore || fail "installed command"
grep -q "^Exec=$T/home/.local/opt/HoechstScore/hoechstscore %f" \
    "$T/home/.local/share/applications/hoechstscore.desktop" || fail ".desktop entry"
if command -v update-mime-database >/dev/null; then
    grep -q "ome.tif" "$T/home/.local/share/mime/globs2" || fail "mime types not registered"
fi
run "$T/home/.local/opt/HoechstScore/uninstall.sh"
(cd "$T/home" && find . | sort) > "$T/after.txt"
diff "$T/before.txt" "$T/after.txt" || fail "uninstall.sh left or removed files (diff above)"

echo "all checks passed on $B"
echo "bundle-test: $steps passed, 0 failed"
