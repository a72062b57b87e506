// Test-only entry: installs the fake core behind Tauri's IPC, then starts the real window.
// A test seeds the fake by setting `window.__FAKE_SEED__` in an init script, and inspects or
// steers it through `window.fake`.
import { mockIPC } from "@tauri-apps/api/mocks";
import { FakeCore } from "./fake";

const fake = new FakeCore(window.__FAKE_SEED__ ?? {});
window.fake = fake;
mockIPC((cmd, args) => fake.handle(cmd, args), { shouldMockEvents: true });
void import("../src/main");
