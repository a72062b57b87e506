// Helpers for the specs: seed data builders and a page opened on the fake core.
import type { Page } from "@playwright/test";
import type { ForwardSpec } from "../src/bindings/ForwardSpec";
import type { Request } from "../src/bindings/Request";
import type { SandboxView } from "../src/bindings/SandboxView";
import { type FakeSeed, offForward } from "./fake";

export function sandbox(name: string, over: Partial<SandboxView> = {}): SandboxView {
  return {
    settings: { name, server: "https://sandboxes.example.com", auth: { mode: "none" }, remoteFolder: "/workspace", allowInsecureHttp: false },
    demo: false,
    status: {
      health: "ready",
      detail: `ssh ${name} works.`,
      keyRegistered: true,
      signedIn: null,
      checkedAt: 1_767_225_600,
    },
    forwards: [],
    autoForward: false,
    detectedPorts: [],
    ...over,
  };
}

export function forward(remotePort: number, over: Partial<ForwardSpec> = {}) {
  return offForward({ remotePort, localPort: remotePort, label: "", autoStart: false, ...over });
}

/** Opens the window on a fake core holding `seed`. */
export async function openApp(page: Page, seed: FakeSeed = {}): Promise<void> {
  await page.addInitScript((s) => {
    window.__FAKE_SEED__ = s;
  }, seed);
  await page.goto("/tests/harness.html");
}

/** The requests the fake received, polls left out unless asked for. */
export function requests<K extends Request["kind"]>(page: Page, kind: K): Promise<Extract<Request, { kind: K }>[]> {
  return page.evaluate((k) => window.fake.requests.filter((r) => r.kind === k), kind) as Promise<
    Extract<Request, { kind: K }>[]
  >;
}

/** Every non-poll request, in order. */
export function actions(page: Page): Promise<Request[]> {
  return page.evaluate(() => window.fake.requests.filter((r) => r.kind !== "snapshot"));
}
