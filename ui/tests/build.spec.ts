// The built app (what Tauri ships) must work under a strict Content-Security-Policy: no inline
// scripts or styles, no eval, nothing fetched from elsewhere.
import { expect, test } from "@playwright/test";
import { CSP, distURL } from "./servers";

test("the production build runs under a strict CSP", async ({ page }) => {
  await page.route(`${distURL}/**`, async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), "content-security-policy": CSP } });
  });
  // Stand in for Tauri's IPC with the smallest core: no sandboxes yet.
  await page.addInitScript(() => {
    const w = window as unknown as { __TAURI_INTERNALS__: unknown; violations: string[] };
    w.violations = [];
    document.addEventListener("securitypolicyviolation", (e) => w.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
    w.__TAURI_INTERNALS__ = {
      transformCallback: () => 1,
      invoke: async (cmd: string) => {
        if (cmd === "take_intents") return [];
        if (cmd === "plugin:event|listen") return 1;
        if (cmd !== "rpc") throw `unknown command ${cmd}`;
        return {
          snapshot: {
            sandboxes: [],
            preferences: { defaultIde: "vsCode", startAtLogin: false, notifications: true },
            log: [],
            generation: 1,
            demoAvailable: false,
            version: "0.1.0",
          },
          notice: null,
        };
      },
    };
  });
  const external: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(distURL)) external.push(r.url());
  });

  await page.goto(`${distURL}/`);
  await expect(page.getByTestId("empty-state")).toBeVisible();
  await expect(page.getByTestId("link-error")).toHaveCount(0);
  // The stylesheet applied (a blocked one would leave the default white background).
  await page.emulateMedia({ colorScheme: "dark" });
  expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe("rgb(22, 24, 29)");
  await page.getByTestId("empty-add-sandbox").click();
  await expect(page.getByTestId("sandbox-form")).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { violations: string[] }).violations)).toEqual([]);
  expect(external).toEqual([]);
});
