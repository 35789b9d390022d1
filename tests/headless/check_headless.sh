#!/usr/bin/env bash
# The headless install, checked for real: the base package (no extras) goes into a fresh venv,
# Qt must be absent, and the CLI, a small cohort and some core tests must run there.
# Usage: tests/headless/check_headless.sh   (PYTHON=python3.11 to choose the interpreter;
# KEEP=1 keeps the work folder). Prints the seconds each step took; exits non-zero on failure.
# Takes about 10 minutes on a busy 2-core machine (618 s measured: 376 s of it installing, most of
# that the 5 GB torch wheel), too long for every CI run; run it after changing dependencies.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hoechstscore-headless.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s)
step() { echo "[headless +$(( $(date +%s) - T0 ))s] $*"; }

step "copying the source tree (tracked and new files, nothing ignored) to $WORK/src"
mkdir "$WORK/src"
git -C "$ROOT" ls-files -co --exclude-standard -z | (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$WORK/src"

step "installing the base package, without extras, into a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
# pytest and pytest-timeout at the versions of the dev extra, nothing else of it (it brings Qt).
mapfile -t TESTING < <("$PY" - "$WORK/src/pyproject.toml" <<'PYEOF'
import sys, tomllib
dev = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["dev"]
print("\n".join(d for d in dev if d.split("==")[0] in ("pytest", "pytest-timeout")))
PYEOF
)
"$PY" -m pip install -q --disable-pip-version-check "$WORK/src" "${TESTING[@]}" 2>&1 | grep -v "^WARNING: Location" || true
"$PY" -c "import core, training" # the install itself must have worked

step "Qt must be absent"
for module in PySide6 pyqtgraph pytestqt; do
    if "$PY" -c "import $module" 2>/dev/null; then echo "FAIL: $module is importable in the headless venv"; exit 1; fi
done
set +e
MSG=$("$WORK/venv/bin/hoechstscore" 2>&1); RC=$?
set -e
[ "$RC" = 3 ] && grep -q "hoechstscore\[app\]" <<<"$MSG" || { echo "FAIL: hoechstscore without Qt said ($RC): $MSG"; exit 1; }
echo "hoechstscore says: $MSG"

cd "$WORK"  # from here on the installed package is imported, not the source copy
step "headless commands"
"$PY" -m core --help >/dev/null
"$PY" -m core cohort --help >/dev/null
"$WORK/venv/bin/hoechstscore-core" --help >/dev/null
"$PY" -m training.retrain --help >/dev/null

step "the shipped files come with the wheel (package data, not the source tree)"
read -r DEMO_MODEL DEMO_COHORT < <("$PY" -c "from core.resources import demo_model_dir as m, demo_cohort_csv as c; print(m(), c())")
case "$DEMO_MODEL" in "$WORK/venv/"*) ;; *) echo "FAIL: the demo model is not the installed one: $DEMO_MODEL"; exit 1;; esac
[ -f "$DEMO_MODEL/model.safetensors" ] && [ -f "$DEMO_COHORT" ] || { echo "FAIL: the wheel lacks the demo model or cohort"; exit 1; }

step "a two-case cohort on one local Dask worker"
"$PY" -m core phantom --size 512 --seed 1 --out p1 >/dev/null
"$PY" -m core phantom --size 512 --seed 2 --out p2 >/dev/null
printf 'case_id,slide,regions\nH1,p1/hoechst.ome.tif,p1/tumour.geojson\nH2,p2/hoechst.ome.tif,p2/tumour.geojson\n' > manifest.csv
"$PY" -m core cohort manifest.csv --out cohort --workers 1 --model "$DEMO_MODEL" \
    --device cpu --precision fp32 --tissue-min-area 500 --im-width 12 --reference-csv \
    "$DEMO_COHORT" --store "sqlite:///$WORK/cases.db" --reference
"$PY" - <<'PYEOF'
import pandas as pd
t = pd.read_parquet("cohort/cohort.parquet")
assert list(t["status"]) == ["done", "done"], t[["case_id", "status", "error"]]
print(t[["case_id", "total_cells", "CD3_CT", "CD8_IM", "is_label", "tb_label"]].to_string(index=False))
PYEOF

step "core tests (source tree, headless venv)"
cd "$WORK/src"
QT_QPA_PLATFORM=offscreen "$PY" -m pytest -q -p no:cacheprovider tests/core/test_cohort.py tests/core/test_scores.py \
    tests/core/test_cli.py tests/core/test_store.py
step "headless install OK"
