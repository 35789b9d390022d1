#!/usr/bin/env bash
# Remove what install.sh added, and nothing else: the files listed in
# ~/.local/opt/HoechstScore/.installed-files, the folders install.sh created (when empty), the
# bundle folder. The user's cases, settings and logs (platformdirs folders) are kept.
set -euo pipefail
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
DEST="$HOME/.local/opt/HoechstScore"
MANIFEST="$DEST/.installed-files"
quiet=0; [ "${1:-}" = "--quiet" ] && quiet=1
[ -f "$MANIFEST" ] || { echo "uninstall.sh: no HoechstScore install found in $DEST" >&2; exit 1; }

files=(); dirs=()
while read -r kind path; do
    case "$kind" in file) files+=("$path") ;; dir) dirs+=("$path") ;; esac
done < "$MANIFEST"
for f in "${files[@]}"; do rm -f -- "$f"; done
rm -rf -- "$DEST"

# Refresh the desktop databases without our entries; then drop the caches these tools wrote into
# folders that install.sh created, so that those folders can go too.
command -v update-mime-database >/dev/null && [ -d "$DATA/mime/packages" ] && update-mime-database "$DATA/mime" || true
command -v update-desktop-database >/dev/null && [ -d "$DATA/applications" ] \
    && update-desktop-database -q "$DATA/applications" || true
for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    d="${dirs[$i]}"
    [ -d "$d" ] || continue
    case "$d" in
        "$DATA/mime") [ -z "$(ls -A "$d/packages" 2>/dev/null)" ] && rm -rf -- "$d" ;;
        "$DATA/applications") [ "$(ls -A "$d")" = "mimeinfo.cache" ] && rm -f -- "$d/mimeinfo.cache" ;;
    esac
    [ -d "$d" ] && rmdir -- "$d" 2>/dev/null || true
done
[ "$quiet" = 1 ] || echo "HoechstScore removed (your cases and settings are kept)."
