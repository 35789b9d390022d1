#!/usr/bin/env bash
# `make bundle`: freeze HoechstScore into dist/HoechstScore/ and pack
# dist/HoechstScore-<version>-linux-x86_64.tar.gz (with install.sh/uninstall.sh inside).
# Usage: installer/build.sh [PYTHON]   (PYTHON: the environment that has the app and PyInstaller)
# HOECHSTSCORE_BUNDLE_VARIANT=gpu keeps the CUDA libraries (a much larger archive; README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
VARIANT="${HOECHSTSCORE_BUNDLE_VARIANT:-cpu}"
export HOECHSTSCORE_BUNDLE_VARIANT="$VARIANT"
VERSION="$("$PY" -c 'import core; print(core.__version__)')"
case "$(uname -s)" in Linux) OS=linux ;; Darwin) OS=macos ;; *) OS=windows ;; esac
SUFFIX=""; [ "$VARIANT" = cpu ] || SUFFIX="-$VARIANT"
NAME="HoechstScore-$VERSION-$OS-$(uname -m)$SUFFIX"
start=$(date +%s)

"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller installer/hoechstscore.spec

DIR=dist/HoechstScore
# One program, three names (installer/bundle_entry.py dispatches on the name it was started as).
for cmd in hoechstscore-core hoechstscore-retrain; do ln -sfn hoechstscore "$DIR/$cmd"; done
cp installer/linux/install.sh installer/linux/uninstall.sh "$DIR/"
cp resources/icons/hoechstscore.png "$DIR/hoechstscore.png"
cp installer/linux/hoechstscore.desktop installer/linux/hoechstscore-mime.xml "$DIR/"
echo "$VERSION $VARIANT" > "$DIR/VERSION"

rm -f "dist/$NAME.tar.gz"
tar -C dist -czf "dist/$NAME.tar.gz" --transform "s,^HoechstScore,$NAME," HoechstScore
end=$(date +%s)
echo "bundle: $DIR ($(du -sh "$DIR" | cut -f1) installed), dist/$NAME.tar.gz" \
     "($(du -h "dist/$NAME.tar.gz" | cut -f1)), built in $((end - start)) s"
