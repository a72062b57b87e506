// The real app under WebDriver (tauri-driver in front of WebKitWebDriver): with nothing
// configured it lists the demo sandbox; adding and toggling a forward makes a real HTTP request
// through 127.0.0.1:LOCAL reach a server "in the pod". Then a second launch with a
// sandbox-forward://add?… link (what the desktop does for a clicked link) hands it to this
// window, which shows the Add form filled in; the tray menu's "Add sandbox…" (clicked over D-Bus,
// as a tray host does) opens the empty form in this window. Run by scripts/e2e-app.sh, which owns
// every process. Env: APP, APP_HOME (the app's HOME), DRIVER (http://127.0.0.1:PORT), POD_PORT,
// LOCAL_PORT, SCREENSHOT; SCREENSHOTS (a directory) and SCREENSHOT_THEME (light or dark, the
// theme the display was started in) for the docs' screenshots (scripts/screenshots.sh): the
// window with the live forward (window-THEME.png) and, in light, the Add form filled from the
// link (add-from-link.png), each at the default size and at 800×600 (…-800x600.png).
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";

const { APP, APP_HOME, DRIVER, POD_PORT, LOCAL_PORT, SCREENSHOT, SCREENSHOTS } = process.env;
const THEME = process.env.SCREENSHOT_THEME || "light";
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wd(method, path, body) {
  const response = await fetch(DRIVER + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json.value)}`);
  return json.value;
}

/** Polls until `check` returns a truthy value; fails with `what` after `ms`. */
async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

const { sessionId } = await until("a WebDriver session", () =>
  wd("POST", "/session", { capabilities: { alwaysMatch: { "tauri:options": { application: APP } } } }),
);
const S = `/session/${sessionId}`;
const find = async (testid) =>
  (await wd("POST", `${S}/element`, { using: "css selector", value: `[data-testid="${testid}"]` }))[ELEMENT];
// textContent by script: WebKitWebDriver's element-text endpoint drops text it deems hidden.
const text = async (testid) =>
  wd("POST", `${S}/execute/sync`, {
    script: "return arguments[0].textContent",
    args: [{ [ELEMENT]: await find(testid) }],
  });
// As a user scrolls: WebKitWebDriver does not bring an element inside the window's scrolling
// pane into view by itself, and refuses one below the fold as "not interactable".
const reveal = async (id) =>
  wd("POST", `${S}/execute/sync`, {
    script: "arguments[0].scrollIntoView({ block: 'center' })",
    args: [{ [ELEMENT]: id }],
  });
const click = async (testid) => {
  const id = await find(testid);
  await reveal(id);
  await wd("POST", `${S}/element/${id}/click`, {});
};
const value = async (testid) =>
  wd("POST", `${S}/execute/sync`, { script: "return arguments[0].value", args: [{ [ELEMENT]: await find(testid) }] });
const type = async (testid, value) => {
  const id = await find(testid);
  await reveal(id);
  await wd("POST", `${S}/element/${id}/clear`, {});
  await wd("POST", `${S}/element/${id}/value`, { text: String(value) });
};

/** Writes what the window shows to `path`. */
const shot = async (path) => {
  await sleep(1200); // a poll and a paint after the last change
  writeFileSync(path, Buffer.from(await wd("GET", `${S}/screenshot`), "base64"));
};
/** For docs/: SCREENSHOTS/NAME.png at the window's default size (src-tauri/src/lib.rs) and
 * NAME-800x600.png, every scrolling pane at its top. */
const docShots = async (name) => {
  const top = () =>
    wd("POST", `${S}/execute/sync`, {
      script: "for (const e of document.querySelectorAll('*')) if (e.scrollTop) e.scrollTop = 0",
      args: [],
    });
  // A notice lies over the content below it until it fades (5 s): wait it out.
  await until("notices to fade", async () =>
    wd("POST", `${S}/execute/sync`, { script: "return !document.querySelector('.feedback.notice')", args: [] }),
  );
  for (const [suffix, width, height] of [["", 960, 680], ["-800x600", 800, 600]]) {
    await wd("POST", `${S}/window/rect`, { width, height });
    await top();
    await shot(`${SCREENSHOTS}/${name}${suffix}.png`);
  }
  await wd("POST", `${S}/window/rect`, { width: 960, height: 680 });
};

try {
  // Nothing configured: the tray process started the demo sandbox, and the window lists it.
  await until("the demo sandbox in the list", async () => (await text("sandbox-item-demo")).toLowerCase().includes("demo"));
  await click("sandbox-item-demo");
  await until("the demo to be reachable", async () => /^(Reachable|Ready)/.test(await text("detail-status")));

  await type("forward-remote", POD_PORT);
  await type("forward-local", LOCAL_PORT);
  await type("forward-label", "e2e web");
  await click("forward-add");
  await until("the new forward's row", () => find(`forward-row-${POD_PORT}`));
  await click(`forward-toggle-${POD_PORT}`);
  await until("the forward to be on", async () =>
    (await text(`forward-address-${POD_PORT}`)).includes(`localhost:${LOCAL_PORT}`),
  );

  const body = await until("an HTTP answer through the forward", async () => {
    const r = await fetch(`http://127.0.0.1:${LOCAL_PORT}/hello.txt`);
    return r.ok ? r.text() : null;
  });
  if (body.trim() !== "hello from the pod") throw new Error(`unexpected body: ${body}`);
  await until("live numbers on the row", async () => /[1-9]/.test(await text(`forward-traffic-${POD_PORT}`)), 10000);

  if (SCREENSHOT) await shot(SCREENSHOT);
  if (SCREENSHOTS) await docShots(`window-${THEME}`);
  console.log(`ok: demo listed, forward :${POD_PORT} -> localhost:${LOCAL_PORT} carried an HTTP request`);

  // A link clicked in a browser: the desktop starts the app with it; that second instance hands
  // it to this one and exits. The form is filled, nothing is added.
  const link =
    "sandbox-forward://add?name=linked&server=https%3A%2F%2Fsandboxes.example.com" +
    "&issuer=https%3A%2F%2Flogin.example.com&client_id=sandbox-forward&folder=%2Fsrc";
  const second = spawnSync(APP, [link], { env: { ...process.env, HOME: APP_HOME }, timeout: 30000 });
  if (second.status !== 0) throw new Error(`the second launch exited ${second.status}: ${second.stderr}`);
  await until("the Add form filled from the link", async () => (await value("field-name")) === "linked");
  if ((await value("field-server")) !== "https://sandboxes.example.com") throw new Error("server not filled");
  if ((await value("field-remoteFolder")) !== "/src") throw new Error("folder not filled");
  if (!(await text("form-link")).startsWith("sandbox-forward://add?")) throw new Error("the link is not shown");
  if ((await text("form-title")) !== "Add a sandbox") throw new Error("not the Add form");
  if (SCREENSHOTS && THEME === "light") await docShots("add-from-link");
  await click("form-cancel");

  // The tray's "Add sandbox…" (its menu read and clicked over D-Bus, as a tray host does).
  const bus = (...args) => execFileSync("gdbus", ["call", "--session", ...args], { encoding: "utf8" });
  const tray = bus("--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.ListNames")
    .match(/org\.kde\.StatusNotifierItem-[0-9-]+/)?.[0];
  if (!tray) throw new Error("no StatusNotifierItem on the session bus");
  const layout = bus("--dest", tray, "--object-path", "/MenuBar", "--method", "com.canonical.dbusmenu.GetLayout", "0", "--", "-1", '["label"]');
  const item = layout.match(/\((\d+), \{'label': <'Add sandbox…'>/)?.[1];
  if (!item) throw new Error(`the tray menu lacks Add sandbox…: ${layout}`);
  bus("--dest", tray, "--object-path", "/MenuBar", "--method", "com.canonical.dbusmenu.Event", item, "clicked", '<"">', "0");
  await until("the empty Add form from the tray", async () => (await text("form-title")) === "Add a sandbox" && (await value("field-name")) === "");
  await click("form-cancel");
  console.log("ok: a sandbox-forward:// link from a second launch filled the Add form; the tray's Add sandbox… opened it");
} catch (e) {
  // What the window showed, for the CI log.
  const body = await wd("POST", `${S}/execute/sync`, { script: "return document.body.innerText", args: [] }).catch(
    (err) => `(no page text: ${err.message})`,
  );
  console.error(`--- window text at failure:\n${body}`);
  throw e;
} finally {
  await wd("DELETE", S).catch(() => {});
}
