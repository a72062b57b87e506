import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // Tauri serves the built files from its own origin: relative URLs work there and in tests.
  base: "./",
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Linux runs the window in WebKitGTK 2.4x; ES2021 is safe there, in WKWebView and WebView2.
    target: "es2021",
  },
  // `tauri dev` expects the dev server at a fixed loopback address (devUrl).
  server: { host: "127.0.0.1", port: 1420, strictPort: true },
  preview: { host: "127.0.0.1", port: 4173, strictPort: true },
  // Scan the test harness too, so the dev server never re-bundles dependencies mid-test.
  optimizeDeps: { entries: ["index.html", "tests/harness.html"] },
});
