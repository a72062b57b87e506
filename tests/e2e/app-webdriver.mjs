// The real app under WebDriver (tauri-driver in front of WebKitWebDriver): with nothing
// configured it lists the demo sandbox; adding and toggling a forward makes a real HTTP request
// through 127.0.0.1:LOCAL reach a server "in the pod". Run by scripts/e2e-app.sh, which owns
// every process. Env: APP, DRIVER (http://127.0.0.1:PORT), POD_PORT, LOCAL_PORT, SCREENSHOT.
import { writeFileSync } from "node:fs";

const { APP, DRIVER, POD_PORT, LOCAL_PORT, SCREENSHOT } = process.env;
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
const type = async (testid, value) => {
  const id = await find(testid);
  await reveal(id);
  await wd("POST", `${S}/element/${id}/clear`, {});
  await wd("POST", `${S}/element/${id}/value`, { text: String(value) });
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

  if (SCREENSHOT) {
    await sleep(1200); // a poll and a paint after the last change
    writeFileSync(SCREENSHOT, Buffer.from(await wd("GET", `${S}/screenshot`), "base64"));
  }
  console.log(`ok: demo listed, forward :${POD_PORT} -> localhost:${LOCAL_PORT} carried an HTTP request`);
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
