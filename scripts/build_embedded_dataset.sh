#!/usr/bin/env bash
# Regenerate data/embedded (the committed embedded-tier dataset) from registry packages.
#
# Downloads pinned versions of the source packages into a temporary folder (nothing is installed
# system-wide), unpacks them, and runs the builder. Needs: apt-get + dpkg-deb (Debian bookworm
# sources; run `apt-get update` once), npm, and the venv with the `build-data` extra (cairosvg).
# Usage: scripts/build_embedded_dataset.sh [OUT_DIR]   (default data/embedded; seed via SEED=...)
set -euo pipefail

OUT="${1:-data/embedded}"
SEED="${SEED:-0}"
PYTHON="${PYTHON:-python}"
# Pinned so a rebuild is byte-identical; bump deliberately and commit the new output.
TUXPAINT_DEB="tuxpaint-stamps-default=2022.06.04-1"
OPENCLIPART_DEB="openclipart-svg=1:0.18+dfsg-19"
WORDLIST_DEB="wamerican=2020.12.07-2"
EMOJI_NPM="emoji-datasource-google@16.0.0"
OPENMOJI_NPM="openmoji@17.0.0"

WORK="$(mktemp -d -t modgap-embedded.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM  # so the EXIT cleanup also runs when interrupted
# (as root, apt-get download warns that it runs "unsandboxed" in this folder: harmless)

unpack_deb() {  # $1 = package=version, $2 = target root; files plus DEBIAN/control (for the version)
  (cd "$WORK" && apt-get download -q "$1")
  local deb
  deb="$(ls "$WORK"/"${1%%=*}"_*.deb)"
  dpkg-deb -x "$deb" "$2"
  dpkg-deb -e "$deb" "$2/DEBIAN"
}

unpack_npm() {  # $1 = name@version, $2 = target folder (the tarball's package/ ends up in it)
  local tgz
  tgz="$(cd "$WORK" && npm pack --silent "$1" | tail -n 1)"
  mkdir -p "$2"
  tar -xzf "$WORK/$tgz" -C "$2"
}

unpack_deb "$TUXPAINT_DEB" "$WORK/tuxpaint"
unpack_deb "$OPENCLIPART_DEB" "$WORK/openclipart"
unpack_deb "$WORDLIST_DEB" "$WORK/wamerican"
unpack_npm "$EMOJI_NPM" "$WORK/emoji"
unpack_npm "$OPENMOJI_NPM" "$WORK/openmoji"

"$PYTHON" -m modgap.data.build_commands build-embedded \
  --tuxpaint-root "$WORK/tuxpaint" \
  --openclipart-root "$WORK/openclipart" \
  --emoji-root "$WORK/emoji/package" \
  --openmoji-root "$WORK/openmoji/package" \
  --wordlist "$WORK/wamerican/usr/share/dict/american-english" \
  --common-licenses /usr/share/common-licenses \
  --out "$OUT" \
  --seed "$SEED"
du -sh "$OUT"
