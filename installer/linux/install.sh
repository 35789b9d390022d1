#!/usr/bin/env bash
# Install the HoechstScore bundle for this user only (no root, no network):
#   the bundle folder   -> ~/.local/opt/HoechstScore
#   the three commands  -> links in ~/.local/bin
#   a menu entry, icon and the slide file types (.ome.tif, .ome.tiff, .czi) in ~/.local/share.
# Run it from the unpacked archive: ./install.sh. Every file it adds is listed in
# ~/.local/opt/HoechstScore/.installed-files; ./uninstall.sh removes exactly those.
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
[ -x "$SRC/hoechstscore" ] || { echo "install.sh: run it from the unpacked HoechstScore folder" >&2; exit 1; }
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
BIN="$HOME/.local/bin"
DEST="$HOME/.local/opt/HoechstScore"
MANIFEST="$DEST/.installed-files"

if [ -e "$DEST" ]; then
    if [ -x "$DEST/uninstall.sh" ] && [ -f "$MANIFEST" ]; then
        echo "Replacing the HoechstScore installed in $DEST"
        "$DEST/uninstall.sh" --quiet
    else
        echo "install.sh: $DEST exists but is not a HoechstScore install; move it away first" >&2
        exit 1
    fi
fi

created=()
make_dir() {  # mkdir -p that remembers each folder it made, so uninstall.sh can remove it again
    local d="$1" missing=()
    while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d="$(dirname "$d")"; done
    for d in "${missing[@]}"; do mkdir "$d"; created+=("$d"); done
}

make_dir "$(dirname "$DEST")"
if [ "$SRC" != "$DEST" ]; then
    cp -a "$SRC" "$DEST.partial"
    mv "$DEST.partial" "$DEST"
fi
files=()
make_dir "$BIN"
for cmd in hoechstscore hoechstscore-core hoechstscore-retrain; do
    ln -sfn "$DEST/$cmd" "$BIN/$cmd"; files+=("$BIN/$cmd")
done
make_dir "$DATA/applications"
sed "s|@BIN@|$DEST|g" "$SRC/hoechstscore.desktop" > "$DATA/applications/hoechstscore.desktop"
files+=("$DATA/applications/hoechstscore.desktop")
make_dir "$DATA/icons/hicolor/256x256/apps"
cp "$SRC/hoechstscore.png" "$DATA/icons/hicolor/256x256/apps/hoechstscore.png"
files+=("$DATA/icons/hicolor/256x256/apps/hoechstscore.png")
make_dir "$DATA/mime/packages"
cp "$SRC/hoechstscore-mime.xml" "$DATA/mime/packages/hoechstscore-mime.xml"
files+=("$DATA/mime/packages/hoechstscore-mime.xml")

{
    echo "# written by install.sh: what uninstall.sh removes (folders last, only when empty)"
    for f in "${files[@]}"; do echo "file $f"; done
    for d in "${created[@]}"; do echo "dir $d"; done
} > "$MANIFEST"

# Desktop databases, where the tools exist (they do on desktop Linux; nothing fails without them).
command -v update-mime-database >/dev/null && update-mime-database "$DATA/mime" || true
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
command -v gtk-update-icon-cache >/dev/null && [ -f "$DATA/icons/hicolor/index.theme" ] \
    && gtk-update-icon-cache -q "$DATA/icons/hicolor" || true

echo "HoechstScore installed in $DEST"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "Add $BIN to your PATH to run hoechstscore from a terminal." ;; esac
