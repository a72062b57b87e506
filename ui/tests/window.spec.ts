import { expect, test } from "@playwright/test";
import { actions, openApp, requests, sandbox } from "./support";

test("a Connect failure is shown beside Connect; the log lists entries", async ({ page }) => {
  const message = "sandboxes.example.com refused the sign-in (401); sign in again.";
  await openApp(page, {
    sandboxes: [sandbox("dev", { status: { ...sandbox("dev").status, health: "needsSignIn", detail: "Sign in again." } })],
    log: [
      { at: 1_767_225_600, level: "info", sandbox: null, message: "Sandbox Forward started" },
      { at: 1_767_225_605, level: "error", sandbox: "dev", message: "forward :5173 stopped: pod unreachable" },
    ],
    failures: { connect: message },
  });
  await expect(page.getByTestId("sandbox-status-dev")).toHaveText("Needs sign-in");

  await page.getByTestId("connect").click();
  const area = page.getByTestId("connect-area");
  await expect(area.getByTestId("connect-error")).toHaveText(message);
  await expect(page.getByTestId("ports")).not.toContainText(message);
  expect(await actions(page)).toEqual([{ kind: "connect", name: "dev" }]);
  // Retrying clears the old error and shows the outcome.
  await page.evaluate(() => window.fake.succeed("connect"));
  await page.getByTestId("connect").click();
  await expect(area.getByTestId("connect-error")).toHaveCount(0);
  await expect(area.getByTestId("connect-notice")).toHaveText("Connected; opening VS Code");
  await expect(page.getByTestId("sandbox-status-dev")).toHaveText("Ready");

  // The log bar shows the latest line; opened, it lists every entry, newest last.
  await expect(page.getByTestId("log-toggle")).toContainText("Connected");
  await page.getByTestId("log-toggle").click();
  const entries = page.getByTestId("log").getByTestId("log-entry");
  await expect(entries).toHaveCount(3);
  await expect(entries.nth(0)).toContainText("Sandbox Forward started");
  await expect(entries.nth(1)).toContainText("dev");
  await expect(entries.nth(1)).toContainText("forward :5173 stopped: pod unreachable");
  await expect(entries.nth(1)).toHaveClass(/level-error/);
  await expect(entries.nth(1).locator("time")).toHaveText(/^\d\d:\d\d:\d\d$/);
  await expect(entries.nth(2)).toContainText("Connected");
});

test("Open in and sign-in send the chosen action", async ({ page }) => {
  const oidc = sandbox("dev", {
    settings: {
      name: "dev",
      server: "https://s.example.com",
      auth: { mode: "oidc", issuer: "https://id.example.com", clientId: "c", scopes: ["openid"], audience: null },
      remoteFolder: "/workspace",
      allowInsecureHttp: false,
    },
    status: { ...sandbox("dev").status, signedIn: false },
  });
  await openApp(page, { sandboxes: [oidc], preferences: { defaultIde: "zed", startAtLogin: false, notifications: true } });
  await expect(page.getByTestId("open-in-select")).toHaveValue("zed");
  await page.getByTestId("open-in-select").selectOption("gateway");
  await page.getByTestId("open-in").click();
  await page.getByTestId("sign-in").click();
  await expect(page.getByTestId("sign-out")).toBeVisible();
  expect(await actions(page)).toEqual([
    { kind: "openIn", name: "dev", ide: "gateway" },
    { kind: "signIn", name: "dev" },
  ]);
});

test("preferences are saved as they change", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("dev")] });
  await page.getByTestId("open-preferences").click();
  await page.getByLabel("Default editor").selectOption("cursor");
  await expect(page.getByTestId("prefs-notice")).toHaveText("Preferences saved");
  await page.getByRole("switch", { name: "Start at login" }).check();
  await expect(page.getByRole("switch", { name: "Start at login" })).toBeChecked();
  expect(await requests(page, "setPreferences")).toEqual([
    { kind: "setPreferences", preferences: { defaultIde: "cursor", startAtLogin: false, notifications: true } },
    { kind: "setPreferences", preferences: { defaultIde: "cursor", startAtLogin: true, notifications: true } },
  ]);
  await page.getByTestId("close-preferences").click();
  await expect(page.getByTestId("open-in-select")).toHaveValue("cursor");
});

test("dark mode follows the system", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("dev")] });
  await expect(page.getByTestId("detail-name")).toBeVisible();
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: "light" });
  const light = await background();
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await background();
  expect(light).toBe("rgb(245, 246, 248)");
  expect(dark).toBe("rgb(22, 24, 29)");
});

test("nothing moves under the pointer when a notice appears or fades", async ({ page }) => {
  await page.clock.install();
  await openApp(page, { sandboxes: [sandbox("dev", { status: { ...sandbox("dev").status, health: "notConnected" } })] });
  const ports = page.getByTestId("ports");
  const top = async () => (await ports.boundingBox())?.y;
  const before = await top();
  await page.getByTestId("connect").click();
  await expect(page.getByTestId("connect-notice")).toBeVisible();
  expect(await top()).toBe(before);
  await page.clock.runFor(6_000); // notices fade after 5 s
  await expect(page.getByTestId("connect-notice")).toHaveCount(0);
  expect(await top()).toBe(before);
});

test("a removed demo sandbox can be added again from Preferences", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("work")], demoAvailable: true });
  await page.getByTestId("open-preferences").click();
  await page.getByTestId("add-demo").click();
  await expect(page.getByTestId("sandbox-item-demo")).toBeVisible();
  await expect(page.getByTestId("add-demo")).toHaveCount(0);
  expect(await actions(page)).toContainEqual({ kind: "addDemo" });

  // Offered only when the app can run one and none exists.
  await openApp(page, { sandboxes: [sandbox("work")] });
  await page.getByTestId("open-preferences").click();
  await expect(page.getByTestId("preferences")).toBeVisible();
  await expect(page.getByTestId("add-demo")).toHaveCount(0);
});

test("a sandbox forwarding ports without ssh shows Forwarding in the good colour", async ({ page }) => {
  const status = { ...sandbox("dev").status, health: "forwarding" as const, detail: "Forwarding 1 port; Connect to set up `ssh dev` as well." };
  await openApp(page, { sandboxes: [sandbox("dev", { status })] });
  const badge = page.getByTestId("sandbox-status-dev");
  await expect(badge).toHaveText("Forwarding");
  await expect(badge).toHaveClass(/tone-ok/);
  await expect(page.getByTestId("detail-status")).toHaveText("Forwarding 1 port; Connect to set up ssh dev as well.");
});

test("keyboard: Ctrl+N adds, Ctrl+, opens Preferences (with the version), Ctrl+F filters the list", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("alpha"), sandbox("beta"), sandbox("gamma")] });
  await expect(page.getByTestId("detail-name")).toHaveText("alpha");

  await page.keyboard.press("Control+n");
  await expect(page.getByTestId("sandbox-form")).toBeVisible();
  await page.keyboard.press("Control+,");
  await expect(page.getByTestId("preferences")).toBeVisible();
  await expect(page.getByTestId("about")).toContainText("Sandbox Forward 0.1.0");

  await expect(page.getByTestId("sandbox-filter")).toHaveCount(0);
  await page.keyboard.press("Control+f");
  await expect(page.getByTestId("sandbox-filter")).toBeFocused();
  await page.keyboard.type("et");
  await expect(page.getByTestId("sandbox-item-beta")).toBeVisible();
  await expect(page.getByTestId("sandbox-item-alpha")).toHaveCount(0);
  await expect(page.getByTestId("sandbox-item-gamma")).toHaveCount(0);
  await page.keyboard.type("x");
  await expect(page.getByTestId("filter-empty")).toHaveText("No sandbox matches.");
  await page.keyboard.press("Escape");
  await expect(page.getByTestId("sandbox-filter")).toHaveCount(0);
  await expect(page.getByTestId("sandbox-item-alpha")).toBeVisible();
});

test("the activity log can be filtered and copied", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const log = [
    { at: 1_767_225_600, level: "info" as const, sandbox: "alpha", message: "Connected" },
    { at: 1_767_225_601, level: "error" as const, sandbox: "beta", message: "Forward :5173: port in use" },
    { at: 1_767_225_602, level: "info" as const, sandbox: null, message: "Preferences saved" },
  ];
  await openApp(page, { sandboxes: [sandbox("alpha"), sandbox("beta")], log });
  await page.getByTestId("log-toggle").click();
  await expect(page.getByTestId("log-entry")).toHaveCount(3);
  await page.getByTestId("log-filter").fill("beta");
  await expect(page.getByTestId("log-entry")).toHaveCount(1);
  await expect(page.getByTestId("log-entry")).toContainText("port in use");
  await page.getByTestId("log-copy").click();
  await expect(page.getByTestId("toast")).toHaveText("Copied 1 line of activity");
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toMatch(/^\d\d:\d\d:\d\d error beta Forward :5173: port in use\n$/);
  await page.getByTestId("log-filter").fill("nothing like this");
  await expect(page.getByTestId("log")).toContainText("No line matches.");
});

test("at 800×600 Edit and Remove… stay side by side at the end of the sandbox's actions", async ({ page }) => {
  await page.setViewportSize({ width: 800, height: 600 });
  await openApp(page, { sandboxes: [sandbox("dev")] });
  const edit = (await page.getByTestId("edit-sandbox").boundingBox())!;
  const remove = (await page.getByTestId("remove-sandbox").boundingBox())!;
  const row = (await page.locator(".action-row").first().boundingBox())!;
  expect(Math.abs(edit.y - remove.y)).toBeLessThan(2);
  expect(remove.x).toBeGreaterThan(edit.x);
  expect(row.x + row.width - (remove.x + remove.width)).toBeLessThan(2);
});
