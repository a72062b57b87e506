// Where the test servers listen (loopback only). UI_TEST_PORT moves both, e.g. when several
// checkouts test at once: the dev server (harness) on it, the built app (vite preview) one above.
const base = Number(process.env.UI_TEST_PORT ?? 4178);

export const harnessPort = base;
export const distPort = base + 1;
export const harnessURL = `http://127.0.0.1:${harnessPort}`;
export const distURL = `http://127.0.0.1:${distPort}`;

/** The policy the Tauri window should run under (tauri.conf.json `app.security.csp`), minus the IPC origins. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; form-action 'none'";
