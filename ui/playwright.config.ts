import { defineConfig } from "@playwright/test";
import { distPort, distURL, harnessPort, harnessURL } from "./tests/servers";

export default defineConfig({
  testDir: "tests",
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  reporter: process.env.CI ? "line" : "list",
  use: {
    baseURL: harnessURL,
    // The app's window size.
    viewport: { width: 900, height: 640 },
    headless: true,
    browserName: "chromium",
    // Debian's chromium, never a downloaded browser; CI runs as root, hence --no-sandbox.
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox"],
    },
    trace: "retain-on-failure",
  },
  webServer: [
    {
      // The dev server serves the test harness (tests/harness.html): the real window with the
      // Tauri IPC answered by an in-memory fake core.
      command: `npx vite --host 127.0.0.1 --port ${harnessPort} --strictPort`,
      url: `${harnessURL}/tests/harness.html`,
      reuseExistingServer: false,
      timeout: 60_000,
    },
    {
      // The production build, to check it runs under the window's CSP.
      command: `npx vite build --logLevel warn --outDir dist-test && npx vite preview --outDir dist-test --host 127.0.0.1 --port ${distPort} --strictPort`,
      url: `${distURL}/`,
      reuseExistingServer: false,
      timeout: 120_000,
    },
  ],
});
