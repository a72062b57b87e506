import { expect, test } from "@playwright/test";
import type { Intent } from "../src/bindings/Intent";
import { actions, openApp, requests, sandbox } from "./support";

const LINK = "sandbox-forward://add?name=dev&server=https%3A%2F%2Fsandboxes.example.com&issuer=https%3A%2F%2Flogin.example.com&client_id=sandbox-forward&audience=api&folder=%2Fsrc";

/** What the window process makes of LINK (sandbox_desk::intent::from_link). */
const FILLED: Intent = {
  kind: "addSandbox",
  link: LINK,
  settings: {
    name: "dev",
    server: "https://sandboxes.example.com",
    auth: { mode: "oidc", issuer: "https://login.example.com", clientId: "sandbox-forward", scopes: ["openid", "offline_access"], audience: "api" },
    remoteFolder: "/src",
    allowInsecureHttp: false,
  },
};

test("the link the app was started with fills the Add form, every value shown, and nothing is sent until Add", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("alpha")], intents: [FILLED] });
  const form = page.getByTestId("sandbox-form");
  await expect(form.getByRole("heading")).toHaveText("Add a sandbox");
  await expect(form.getByTestId("form-from-link")).toContainText("Filled in from a link");
  await expect(form.getByTestId("form-link")).toHaveText(LINK);
  await expect(form.getByLabel("Name", { exact: true })).toHaveValue("dev");
  await expect(form.getByLabel("Server")).toHaveValue("https://sandboxes.example.com");
  await expect(form.getByLabel("Sign-in")).toHaveValue("oidc");
  await expect(form.getByLabel("Issuer URL")).toHaveValue("https://login.example.com");
  await expect(form.getByLabel("Client ID")).toHaveValue("sandbox-forward");
  await expect(form.getByLabel("Scopes")).toHaveValue("openid offline_access");
  await expect(form.getByLabel("Audience (optional)")).toHaveValue("api");
  await expect(form.getByLabel("Remote folder")).toHaveValue("/src");
  await expect(form.getByTestId("form-save")).toHaveText("Add sandbox");

  // It never connects or signs in by itself: nothing but polls went to the core.
  await page.waitForTimeout(300);
  expect(await actions(page)).toEqual([]);

  await form.getByTestId("form-save").click();
  await expect(page.getByTestId("sandbox-item-dev")).toBeVisible();
  const saved = await requests(page, "saveSandbox");
  expect(saved).toEqual([{ kind: "saveSandbox", original: null, settings: FILLED.kind === "addSandbox" ? FILLED.settings : null }]);
  expect((await actions(page)).map((r) => r.kind)).toEqual(["saveSandbox"]);
});

test("a link handed to the open window replaces what it shows with the filled Add form", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("alpha")] });
  await expect(page.getByTestId("detail-name")).toHaveText("alpha");
  await page.evaluate((intent) => window.fake.deliver(intent), FILLED);
  const form = page.getByTestId("sandbox-form");
  await expect(form.getByLabel("Name", { exact: true })).toHaveValue("dev");
  await expect(form.getByLabel("Name", { exact: true })).toBeFocused();
});

test("a link that cannot be used says why and leaves the window as it was", async ({ page }) => {
  const message = "This link cannot add a sandbox: the link carries token, which a link never may: credentials are entered in the app or the CLI, never taken from a link.";
  await openApp(page, { sandboxes: [sandbox("alpha")], intents: [{ kind: "badLink", message }] });
  await expect(page.getByTestId("link-error")).toHaveText(message);
  await expect(page.getByTestId("detail-name")).toHaveText("alpha");
  await expect(page.getByTestId("sandbox-form")).toHaveCount(0);
  await page.getByRole("button", { name: "Dismiss" }).click();
  await expect(page.getByTestId("link-error")).toHaveCount(0);

  // A good link afterwards opens the form and clears an old refusal.
  await page.evaluate((m) => window.fake.deliver({ kind: "badLink", message: m }), message);
  await expect(page.getByTestId("link-error")).toBeVisible();
  await page.evaluate((intent) => window.fake.deliver(intent), FILLED);
  await expect(page.getByTestId("sandbox-form")).toBeVisible();
  await expect(page.getByTestId("link-error")).toHaveCount(0);
});

test("the tray's Add sandbox… opens the empty Add form", async ({ page }) => {
  await openApp(page, { sandboxes: [sandbox("alpha")] });
  await expect(page.getByTestId("detail-name")).toHaveText("alpha");
  await page.evaluate(() => window.fake.deliver({ kind: "addSandbox", settings: null, link: null }));
  const form = page.getByTestId("sandbox-form");
  await expect(form.getByRole("heading")).toHaveText("Add a sandbox");
  await expect(form.getByLabel("Name", { exact: true })).toHaveValue("");
  await expect(form.getByLabel("Name", { exact: true })).toBeFocused();
  await expect(form.getByTestId("form-from-link")).toHaveCount(0);
});
