import { expect, test } from "@playwright/test";
import { actions, forward, openApp, requests, sandbox } from "./support";

const seed = {
  sandboxes: [
    sandbox("dev", {
      forwards: [forward(5173, { label: "vite", localPort: 0 }), forward(8888, { label: "Jupyter" })],
    }),
  ],
};

test("turning a forward on shows the bound port and live numbers; off stops it", async ({ page }) => {
  await openApp(page, seed);
  const row = page.getByTestId("forward-row-5173");
  const toggle = page.getByTestId("forward-toggle-5173");
  await expect(toggle).not.toBeChecked();
  await expect(row.getByTestId("forward-address-5173")).toHaveText("localhost:auto → :5173");
  await expect(row.getByTestId("forward-traffic-5173")).toContainText("0 B");

  await toggle.check();
  expect(await requests(page, "setForward")).toEqual([{ kind: "setForward", name: "dev", remotePort: 5173, on: true }]);
  await expect(toggle).toBeChecked();
  await expect(row.getByTestId("forward-address-5173")).toHaveText("localhost:49200 → :5173");
  await expect(row.getByTestId("forward-notice-5173")).toHaveText("Forwarding 127.0.0.1:49200 → :5173");
  // The fake carries traffic on every poll: the numbers move without any click.
  await expect(row.getByTestId("forward-conns-5173")).toHaveText("1 / 1");
  await expect(row.getByTestId("forward-traffic-5173")).toContainText(/↑ \d+(\.\d)? KiB ↓ \d+(\.\d)? MiB/);
  const before = await row.getByTestId("forward-traffic-5173").textContent();
  await expect(row.getByTestId("forward-traffic-5173")).not.toHaveText(before ?? "");

  await toggle.uncheck();
  await expect(toggle).not.toBeChecked();
  await expect(row.getByTestId("forward-address-5173")).toHaveText("localhost:auto → :5173");
  expect((await requests(page, "setForward")).map((r) => r.on)).toEqual([true, false]);
  // The other forward was never touched.
  await expect(page.getByTestId("forward-toggle-8888")).not.toBeChecked();
});

test("a refused toggle shows its reason on that row only and falls back to off", async ({ page }) => {
  const message = "port 5173 is already in use on this computer; stop what uses it or pick another local port.";
  await openApp(page, { ...seed, failures: { setForward: message } });
  const toggle = page.getByTestId("forward-toggle-5173");
  await toggle.click();

  await expect(page.getByTestId("forward-error-5173")).toHaveText(message);
  await expect(page.getByTestId("forward-row-5173")).toContainText(message);
  await expect(toggle).not.toBeChecked();
  await expect(toggle).toBeEnabled();
  // Nowhere else: not on the other row, not by Connect, not as a toast or banner.
  await expect(page.getByTestId("forward-row-8888")).not.toContainText(message);
  await expect(page.getByTestId("connect-area")).not.toContainText(message);
  await expect(page.getByText(message)).toHaveCount(1);
  expect(await requests(page, "setForward")).toEqual([{ kind: "setForward", name: "dev", remotePort: 5173, on: true }]);
});

test("add a forward from a preset chip; toggle auto-start; remove it", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("dev")] });
  await expect(page.getByTestId("no-forwards")).toBeVisible();
  const form = page.getByTestId("forward-form");

  // Out of range: caught before any request.
  await form.getByLabel("Pod port").fill("80");
  await form.getByTestId("forward-add").click();
  await expect(form.getByTestId("forward-remote-error")).toContainText("1024 to 65535");
  expect(await requests(page, "saveForward")).toEqual([]);

  await form.getByTestId("preset-5678").click();
  await expect(form.getByLabel("Pod port")).toHaveValue("5678");
  await expect(form.getByLabel("Label")).toHaveValue("debugpy");
  await form.getByLabel("Local port").fill("15678");
  await form.getByTestId("forward-add").click();

  const row = page.getByTestId("forward-row-5678");
  await expect(row.getByTestId("forward-address-5678")).toHaveText("localhost:15678 → :5678");
  await expect(form.getByLabel("Pod port")).toHaveValue("");
  await expect(form.getByTestId("preset-5678")).toHaveCount(0);

  await row.getByTestId("forward-autostart-5678").check();
  await expect(row.getByTestId("forward-autostart-5678")).toBeChecked();
  await row.getByTestId("forward-remove-5678").click();
  await expect(row).toHaveCount(0);

  expect(await requests(page, "saveForward")).toEqual([
    { kind: "saveForward", name: "dev", forward: { remotePort: 5678, localPort: 15678, label: "debugpy", autoStart: false } },
    { kind: "saveForward", name: "dev", forward: { remotePort: 5678, localPort: 15678, label: "debugpy", autoStart: true } },
  ]);
  expect(await requests(page, "removeForward")).toEqual([{ kind: "removeForward", name: "dev", remotePort: 5678 }]);
});

// The app's default size, the size people shrink it to, and its minimum (src-tauri/src/lib.rs).
for (const [width, height] of [
  [960, 680],
  [800, 600],
  [720, 520],
]) {
  test(`every forward's label and mapping are readable at ${width}×${height}`, async ({ page }) => {
    await page.setViewportSize({ width, height });
    await openApp(page, {
      sandboxes: [
        sandbox("a-sandbox-with-a-long-name", {
          forwards: [
            forward(5173, { label: "vite dev server for the storefront", localPort: 15173 }),
            forward(65535, { label: "debugpy", localPort: 65534 }),
          ],
        }),
      ],
    });
    await page.getByTestId("forward-toggle-65535").click();
    await expect(page.getByTestId("forward-address-65535")).toHaveText("localhost:65534 → :65535");
    for (const port of [5173, 65535]) {
      const row = page.getByTestId(`forward-row-${port}`);
      const rowBox = (await row.boundingBox())!;
      for (const part of [row.getByTestId(`forward-address-${port}`), row.locator(".service-label")]) {
        // Not cut: nothing overflows its box, and the box stays inside the row.
        const cut = await part.evaluate((el) => el.scrollWidth > el.clientWidth + 1);
        expect(cut, `${await part.textContent()} is cut`).toBe(false);
        const box = (await part.boundingBox())!;
        expect(box.x + box.width).toBeLessThanOrEqual(rowBox.x + rowBox.width + 1);
      }
      // The mapping's two ends never split inside.
      for (const end of await row.locator(".address > span").all()) {
        expect((await end.boundingBox())!.height).toBeLessThan(24);
      }
    }
  });
}

test("a taken local port comes with a free one to use, in one click", async ({ page }) => {
  const taken = {
    ...forward(5173, { label: "vite" }),
    lastError: "local port 5173 is already in use by another program; use 49321 instead, or stop that program",
    suggestedPort: 49321,
  };
  await openApp(page, { sandboxes: [sandbox("dev", { forwards: [taken] })] });
  const row = page.getByTestId("forward-row-5173");
  await expect(row.getByTestId("forward-error-5173")).toContainText("use 49321 instead");
  await row.getByTestId("forward-use-port-5173").click();
  await expect(row.getByTestId("forward-address-5173")).toHaveText("localhost:49321 → :5173");
  await expect(row.getByTestId("forward-toggle-5173")).toBeChecked();
  await expect(row.getByTestId("forward-use-port-5173")).toHaveCount(0);
  expect(await actions(page)).toEqual([
    { kind: "saveForward", name: "dev", forward: { remotePort: 5173, localPort: 49321, label: "vite", autoStart: false } },
    { kind: "setForward", name: "dev", remotePort: 5173, on: true },
  ]);
});

test("a forward's local port and label are edited in place", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("dev", { forwards: [forward(8888, { label: "Jupyter" })] })] });
  await page.getByTestId("forward-edit-8888").click();
  const form = page.getByTestId("forward-form");
  await expect(form.getByTestId("forward-form-title")).toHaveText("Edit forward :8888");
  await expect(form.getByTestId("forward-local")).toBeFocused();
  await expect(form.getByTestId("forward-label")).toHaveValue("Jupyter");
  await form.getByTestId("forward-local").fill("18888");
  await form.getByTestId("forward-label").fill("notebook");
  await form.getByRole("button", { name: "Save" }).click();
  const row = page.getByTestId("forward-row-8888");
  await expect(row.getByTestId("forward-address-8888")).toHaveText("localhost:18888 → :8888");
  await expect(row).toContainText("notebook");
  await expect(form.getByTestId("forward-form-title")).toHaveText("Add forward");
  expect(await requests(page, "saveForward")).toEqual([
    { kind: "saveForward", name: "dev", forward: { remotePort: 8888, localPort: 18888, label: "notebook", autoStart: false } },
  ]);
});

test("a running forward opens in the browser and copies its URL", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await openApp(page, { sandboxes: [sandbox("dev", { forwards: [forward(5173, { label: "vite", localPort: 0 })] })] });
  const row = page.getByTestId("forward-row-5173");
  await expect(row.getByTestId("forward-open-5173")).toHaveCount(0);
  await row.getByTestId("forward-toggle-5173").click();
  await row.getByTestId("forward-open-5173").click();
  await expect(row.getByTestId("forward-notice-5173")).toHaveText("Opened http://localhost:49200/");
  expect(await requests(page, "openForward")).toEqual([{ kind: "openForward", name: "dev", remotePort: 5173 }]);
  await row.getByTestId("forward-copy-5173").click();
  await expect(page.getByTestId("toast")).toHaveText("Copied http://localhost:49200/");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("http://localhost:49200/");
});

test("a forward whose tunnel is resuming says so, in amber, until it is back", async ({ page }) => {
  const resuming = {
    ...forward(5173, { label: "vite" }),
    on: true,
    boundPort: 5173,
    active: 1,
    total: 1,
    reconnectingSecs: 12,
  };
  await openApp(page, { sandboxes: [sandbox("dev", { forwards: [resuming, { ...forward(8000), on: true, boundPort: 8000 }] })] });
  const row = page.getByTestId("forward-row-5173");
  await expect(row.getByTestId("forward-reconnecting-5173")).toHaveText("reconnecting (12 s)…");
  await expect(row.getByTestId("forward-reconnecting-5173")).toHaveAttribute("role", "status");
  // Not an error: no red line, and the other forward says nothing of it.
  await expect(row.getByTestId("forward-error-5173")).toHaveCount(0);
  await expect(page.getByTestId("forward-reconnecting-8000")).toHaveCount(0);
  const colour = await row.getByTestId("forward-reconnecting-5173").evaluate((e) => getComputedStyle(e).color);
  const error = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--bad"));
  expect(colour).not.toBe(error.trim());
});

test("ports listening in the pod are offered as one-click forwards", async ({ page }) => {
  await openApp(page, {
    sandboxes: [sandbox("dev", { forwards: [forward(8888, { label: "Jupyter" })] })],
    listening: { dev: [{ port: 5173, process: "node" }, { port: 8888, process: "python3" }, { port: 9229, process: null }] },
  });
  await page.getByTestId("scan-ports").click();
  // 8888 already has a forward: only the others are offered.
  await expect(page.getByTestId("detected-8888")).toHaveCount(0);
  await expect(page.getByTestId("detected-9229")).toContainText("9229");
  await expect(page.getByTestId("detected-5173")).toHaveText(/5173\s+node\s+— Forward/);
  await page.getByTestId("detected-5173").click();
  const row = page.getByTestId("forward-row-5173");
  await expect(row.getByTestId("forward-toggle-5173")).toBeChecked();
  await expect(row).toContainText("node");
  await expect(page.getByTestId("detected-5173")).toHaveCount(0);
  expect(await actions(page)).toEqual([
    { kind: "listeningPorts", name: "dev" },
    { kind: "saveForward", name: "dev", forward: { remotePort: 5173, localPort: 5173, label: "node", autoStart: false } },
    { kind: "setForward", name: "dev", remotePort: 5173, on: true },
  ]);
});

test("ports the app found listening are offered without a scan; auto-forward is a per-sandbox setting", async ({ page }) => {
  await openApp(page, {
    sandboxes: [
      sandbox("dev", {
        forwards: [forward(8888)],
        detectedPorts: [{ port: 5173, process: "node", forwarded: false }, { port: 8888, process: null, forwarded: true }],
      }),
      sandbox("other"),
    ],
  });
  await expect(page.getByTestId("detected-5173")).toHaveText(/5173\s+node\s+— Forward/);
  await expect(page.getByTestId("detected-8888")).toHaveCount(0);
  const auto = page.getByTestId("auto-forward");
  await expect(auto).not.toBeChecked();
  await auto.check();
  await expect(auto).toBeChecked();
  await expect(page.getByTestId("auto-forward-notice")).toHaveText("Ports that start listening in dev are forwarded as they are found.");
  // Per sandbox: another one keeps it off.
  await page.getByTestId("sandbox-item-other").click();
  await expect(page.getByTestId("auto-forward")).not.toBeChecked();
  await page.getByTestId("sandbox-item-dev").click();
  await expect(page.getByTestId("auto-forward")).toBeChecked();
  await page.getByTestId("auto-forward").uncheck();
  await expect(page.getByTestId("auto-forward")).not.toBeChecked();
  expect(await requests(page, "setAutoForward")).toEqual([
    { kind: "setAutoForward", name: "dev", on: true },
    { kind: "setAutoForward", name: "dev", on: false },
  ]);
});

test("a refused auto-forward setting says why where it was changed and shows the old state", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("dev")], failures: { setAutoForward: "cannot save app.toml: disk full" } });
  await page.getByTestId("auto-forward").click();
  await expect(page.getByTestId("auto-forward-error")).toHaveText("cannot save app.toml: disk full");
  await expect(page.getByTestId("auto-forward")).not.toBeChecked();
});
