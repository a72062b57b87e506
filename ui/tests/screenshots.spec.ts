// Screenshots for docs/ of what the real app cannot stage on demand: the Ports card with ports
// detected in the pod and a forward whose tunnel is resuming ("reconnecting (12 s)…"). Skipped
// unless SCREENSHOTS names the directory to write them to (scripts/screenshots.sh sets it); each
// is taken at the app's default window size and at 800×600.
import { resolve } from "node:path";
import { expect, test } from "@playwright/test";
import { forward, openApp, sandbox } from "./support";

const dir = process.env.SCREENSHOTS;
test.skip(!dir, "SCREENSHOTS is not set");

const SIZES = [
  { suffix: "", width: 960, height: 680 }, // the window's default (src-tauri/src/lib.rs)
  { suffix: "-800x600", width: 800, height: 600 },
];

for (const { suffix, width, height } of SIZES) {
  test(`the Ports card: detected ports and a forward reconnecting (${width}×${height})`, async ({ page }) => {
    await page.setViewportSize({ width, height });
    const on = (port: number, label: string, over = {}) => ({
      ...forward(port, { label }),
      on: true,
      boundPort: port,
      active: 1,
      total: 3,
      bytesSent: 48_300,
      bytesReceived: 2_310_000,
      ...over,
    });
    await openApp(page, {
      sandboxes: [
        sandbox("dev", {
          forwards: [on(5173, "vite", { reconnectingSecs: 12 }), on(8888, "Jupyter"), forward(5432, { label: "postgres" })],
          detectedPorts: [
            { port: 3000, process: "node", forwarded: false },
            { port: 6006, process: "python3", forwarded: false },
            { port: 9229, process: null, forwarded: false },
          ],
        }),
        sandbox("staging", { status: { ...sandbox("staging").status, health: "notConnected", detail: "Reachable. Connect sets up ssh staging." } }),
      ],
    });
    await expect(page.getByTestId("forward-reconnecting-5173")).toHaveText("reconnecting (12 s)…");
    await expect(page.getByTestId("detected-3000")).toBeVisible();
    // Nothing on the rows is cut short.
    for (const id of ["forward-reconnecting-5173", "forward-address-5173", "forward-traffic-5173"]) {
      expect(await page.getByTestId(id).evaluate((e) => e.scrollWidth <= e.clientWidth), id).toBe(true);
    }
    // The card at the top of the pane, a little of the one above showing.
    await page.getByTestId("ports").evaluate((e) => {
      e.scrollIntoView({ block: "start" });
      const pane = e.closest(".content") ?? e.parentElement!;
      pane.scrollTop -= 16;
    });
    await page.waitForTimeout(300);
    await page.screenshot({ path: resolve(dir!, `ports${suffix}.png`) });
  });
}
