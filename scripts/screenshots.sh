#!/usr/bin/env bash
# Regenerates the screenshots in docs/, each at the window's default size (960×680) and at
# 800×600 (…-800x600.png):
# - window-light, window-dark and add-from-link (the Add form filled from a sandbox-forward://
#   link): the real app, driven over WebDriver under Xvfb by scripts/e2e-app.sh, its display
#   started in the light and then the dark GTK theme;
# - ports (detected ports, a forward reconnecting): the window on the UI tests' fake core
#   (ui/tests/screenshots.spec.ts, headless Chromium), as a real pod cannot be made to show that
#   on demand.
# Usage: scripts/screenshots.sh [APP_BINARY]  (default: the debug build; build ui/ and the app first)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
app="${1:-${CARGO_TARGET_DIR:-$here/target}/debug/sandbox-forward-app}"
docs="$here/docs"
SCREENSHOTS="$docs" SCREENSHOT_THEME=light GTK_THEME=Adwaita "$here/scripts/e2e-app.sh" "$app"
SCREENSHOTS="$docs" SCREENSHOT_THEME=dark GTK_THEME=Adwaita:dark "$here/scripts/e2e-app.sh" "$app"
(cd "$here/ui" && SCREENSHOTS="$docs" npx playwright test tests/screenshots.spec.ts)
ls -l "$docs"/*.png
