#!/usr/bin/env sh
# Renders the app icons from icon.svg (needs rsvg-convert, Debian: librsvg2-bin; and python3).
# Tauri needs RGBA PNGs; icon.ico (Windows) embeds PNGs.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r() { rsvg-convert -w "$1" -h "$1" icon.svg -o "$2"; }
r 32 32x32.png
r 128 128x128.png
r 256 128x128@2x.png
r 512 icon.png
for s in 16 24 32 48 64 256; do r "$s" "$tmp/$s.png"; done
python3 - "$tmp" <<'PY'
import struct, sys
sizes = [16, 24, 32, 48, 64, 256]
data = [open(f"{sys.argv[1]}/{s}.png", "rb").read() for s in sizes]
out, offset = struct.pack("<HHH", 0, 1, len(sizes)), 6 + 16 * len(sizes)
for s, d in zip(sizes, data):
    out += struct.pack("<BBBBHHII", s % 256, s % 256, 0, 0, 1, 32, len(d), offset)
    offset += len(d)
open("icon.ico", "wb").write(out + b"".join(data))
PY
