// An in-memory stand-in for the app's core, speaking the real protocol types: enough state
// (sandboxes, forwards, preferences, log) to assert what the window does with it.
import { emit } from "@tauri-apps/api/event";
import type { ActionError } from "../src/bindings/ActionError";
import type { ErrorCode } from "../src/bindings/ErrorCode";
import type { ForwardView } from "../src/bindings/ForwardView";
import type { Intent } from "../src/bindings/Intent";
import type { LogEntry } from "../src/bindings/LogEntry";
import type { Preferences } from "../src/bindings/Preferences";
import type { Reply } from "../src/bindings/Reply";
import type { Request } from "../src/bindings/Request";
import type { SandboxView } from "../src/bindings/SandboxView";
import type { Snapshot } from "../src/bindings/Snapshot";

export interface FakeSeed {
  sandboxes?: SandboxView[];
  log?: LogEntry[];
  preferences?: Preferences;
  /** What `listeningPorts` answers per sandbox (port and process). */
  listening?: Record<string, { port: number; process: string | null }[]>;
  /** The app could run a demo sandbox and none exists. */
  demoAvailable?: boolean;
  /** What the window process holds for the window at start (the link it was launched with). */
  intents?: Intent[];
  /** Requests of these kinds fail with this message (an ActionError, code `failed`), or this
   * ActionError. */
  failures?: Partial<Record<Request["kind"], string | ActionError>>;
}

declare global {
  interface Window {
    __FAKE_SEED__?: FakeSeed;
    fake: FakeCore;
  }
}

/** Thrown as is: the IPC rejects with it, like the core's ActionError. */
function refuse(message: string, code: ErrorCode = "failed"): never {
  throw { code, message } satisfies ActionError;
}

export class FakeCore {
  /** Every request received, in order (polls included). */
  readonly requests: Request[] = [];
  readonly failures = new Map<string, string | ActionError>();
  private state: Snapshot;
  /** Stored cookie values, which the snapshot never carries. */
  private readonly cookies = new Map<string, string>();
  /** What `take_intents` answers next (the window process's inbox). */
  private intents: Intent[];
  private clock = 1_767_225_600; // 2026-01-01 00:00:00 UTC
  private nextPort = 49200;

  constructor(private readonly seed: FakeSeed) {
    this.state = {
      sandboxes: structuredClone(seed.sandboxes ?? []),
      preferences: seed.preferences ?? { defaultIde: "vsCode", startAtLogin: false, notifications: true },
      log: structuredClone(seed.log ?? []),
      generation: 1,
      demoAvailable: seed.demoAvailable ?? false,
      version: "0.1.0",
    };
    for (const [kind, message] of Object.entries(seed.failures ?? {})) this.failures.set(kind, message);
    this.intents = structuredClone(seed.intents ?? []);
  }

  /** As the window process does when a link or "Add sandbox…" reaches the running app. */
  async deliver(...intents: Intent[]): Promise<void> {
    this.intents.push(...intents);
    await emit("intent");
  }

  fail(kind: Request["kind"], message: string | ActionError): void {
    this.failures.set(kind, message);
  }

  succeed(kind: Request["kind"]): void {
    this.failures.delete(kind);
  }

  /** The Tauri command handler. */
  handle(cmd: string, args: unknown): Reply | Intent[] {
    if (cmd === "take_intents") return this.intents.splice(0);
    if (cmd !== "rpc") throw `unknown command ${cmd}`;
    const request = structuredClone((args as { request: Request }).request);
    this.requests.push(request);
    const failure = this.failures.get(request.kind);
    if (typeof failure === "string") refuse(failure);
    if (failure) refuse(failure.message, failure.code);
    if (request.kind === "listeningPorts") {
      const forwarded = new Set(this.sandbox(request.name).forwards.map((f) => f.spec.remotePort));
      const ports = (this.seed.listening?.[request.name] ?? []).map((p) => ({ ...p, forwarded: forwarded.has(p.port) }));
      const notice = ports.length ? `${ports.length} ports listen in ${request.name}` : `Nothing listens in ${request.name}`;
      return structuredClone({ snapshot: this.state, notice, listeningPorts: { ports, overSsh: false } });
    }
    const notice = this.apply(request);
    return structuredClone({ snapshot: this.state, notice });
  }

  private apply(request: Request): string | null {
    switch (request.kind) {
      case "snapshot":
        this.traffic();
        return null;
      case "refresh":
        for (const s of this.state.sandboxes) s.status.checkedAt = this.clock;
        this.changed(null, "Checked every sandbox");
        return null;
      case "saveSandbox": {
        const { original, settings } = request;
        const taken = this.state.sandboxes.some((s) => s.settings.name === settings.name);
        if (taken && original !== settings.name) refuse(`a sandbox named ${settings.name} already exists; pick another name`, "alreadyExists");
        if (settings.auth.mode === "cookie") {
          if (settings.auth.value) this.cookies.set(settings.name, settings.auth.value);
          settings.auth.value = ""; // secrets never go back to a face
        }
        if (original === null) {
          this.state.sandboxes.push({
            settings,
            demo: false,
            status: {
              health: "notConnected",
              detail: `Reachable; Connect sets up ssh ${settings.name}.`,
              keyRegistered: false,
              signedIn: settings.auth.mode === "oidc" ? false : null,
              checkedAt: this.clock,
            },
            forwards: [],
            autoForward: false,
            detectedPorts: [],
          });
        } else {
          this.sandbox(original).settings = settings;
        }
        this.changed(settings.name, `Saved ${settings.name}`);
        return `Saved ${settings.name}`;
      }
      case "removeSandbox":
        this.sandbox(request.name);
        this.state.sandboxes = this.state.sandboxes.filter((s) => s.settings.name !== request.name);
        this.changed(request.name, "Removed");
        return `Removed ${request.name}`;
      case "connect": {
        const s = this.sandbox(request.name);
        Object.assign(s.status, { health: "ready", keyRegistered: true, detail: `ssh ${request.name} works.` });
        this.changed(request.name, "Connected");
        return `Connected; opening VS Code`;
      }
      case "openIn":
        this.sandbox(request.name);
        return `Opening ${request.ide}`;
      case "signIn":
      case "signOut":
        this.sandbox(request.name).status.signedIn = request.kind === "signIn";
        this.changed(request.name, request.kind === "signIn" ? "Signed in" : "Signed out");
        return request.kind === "signIn" ? "Signed in" : "Signed out";
      case "saveForward": {
        const s = this.sandbox(request.name);
        const existing = s.forwards.find((f) => f.spec.remotePort === request.forward.remotePort);
        if (existing) existing.spec = request.forward;
        else s.forwards.push(offForward(request.forward));
        this.changed(request.name, `Saved forward :${request.forward.remotePort}`);
        return `Saved forward :${request.forward.remotePort}`;
      }
      case "removeForward": {
        const s = this.sandbox(request.name);
        s.forwards = s.forwards.filter((f) => f.spec.remotePort !== request.remotePort);
        this.changed(request.name, `Removed forward :${request.remotePort}`);
        return `Removed forward :${request.remotePort}`;
      }
      case "setForward": {
        const f = this.forward(request.name, request.remotePort);
        if (request.on) {
          Object.assign(f, {
            on: true,
            boundPort: f.spec.localPort || this.nextPort++,
            active: 0,
            lastError: null,
            suggestedPort: null,
          });
        } else {
          Object.assign(f, { on: false, boundPort: null, active: 0 });
        }
        const said = request.on ? `Forwarding 127.0.0.1:${f.boundPort} → :${request.remotePort}` : `Stopped :${request.remotePort}`;
        this.changed(request.name, said);
        return said;
      }
      case "setPreferences":
        this.state.preferences = request.preferences;
        this.changed(null, "Preferences saved");
        return "Preferences saved";
      case "openForward": {
        const f = this.forward(request.name, request.remotePort);
        if (!f.on) refuse(`the forward to :${request.remotePort} is off; turn it on first`, "forwardOff");
        return `Opened http://localhost:${f.boundPort}/`;
      }
      case "listeningPorts":
        return null; // answered in handle(), which adds the ports
      case "stopAllForwards": {
        let stopped = 0;
        for (const s of this.state.sandboxes) {
          for (const f of s.forwards.filter((f) => f.on)) {
            Object.assign(f, { on: false, boundPort: null, active: 0 });
            stopped += 1;
          }
        }
        this.changed(null, `Stopped all forwards (${stopped})`);
        return `Stopped ${stopped} forwards.`;
      }
      case "forwardPort": {
        const s = this.sandbox(request.name);
        if (request.remotePort < 1024) refuse(`port ${request.remotePort} cannot be forwarded; pick a port from 1024 up`, "invalidInput");
        let f = s.forwards.find((f) => f.spec.remotePort === request.remotePort);
        if (!f) {
          const process = s.detectedPorts.find((p) => p.port === request.remotePort)?.process ?? "";
          f = offForward({ remotePort: request.remotePort, localPort: s.demo ? this.nextPort++ : request.remotePort, label: process, autoStart: false });
          s.forwards.push(f);
        }
        Object.assign(f, { on: true, boundPort: f.spec.localPort || this.nextPort++, lastError: null, suggestedPort: null });
        for (const p of s.detectedPorts) if (p.port === request.remotePort) p.forwarded = true;
        const said = `Forwarding localhost:${f.boundPort} → :${request.remotePort}`;
        this.changed(request.name, said);
        return said;
      }
      case "setAutoForward": {
        this.sandbox(request.name).autoForward = request.on;
        const said = request.on
          ? `Ports that start listening in ${request.name} are forwarded as they are found.`
          : `Ports that start listening in ${request.name} are offered, not forwarded.`;
        this.changed(request.name, said);
        return said;
      }
      case "addDemo": {
        this.state.sandboxes.push({
          settings: { name: "demo", server: "http://127.0.0.1:40000", auth: { mode: "bearerFile", path: "/demo/token" }, remoteFolder: "/demo/workspace", allowInsecureHttp: false },
          demo: true,
          status: { health: "notConnected", detail: "Reachable. Connect to register a key and set up `ssh demo`.", keyRegistered: false, signedIn: null, checkedAt: this.clock },
          forwards: [],
          autoForward: false,
          detectedPorts: [],
        });
        this.state.demoAvailable = false;
        this.changed("demo", "Demo sandbox running");
        return "Added the demo sandbox demo.";
      }
    }
  }

  /** Each poll, every forward that is on carries a connection and some bytes. */
  private traffic(): void {
    let moved = false;
    for (const s of this.state.sandboxes) {
      for (const f of s.forwards.filter((f) => f.on)) {
        if (f.total === 0) f.total = 1;
        f.active = 1;
        f.bytesSent += 1536;
        f.bytesReceived += 3 * 1024 * 1024;
        moved = true;
      }
    }
    if (moved) this.state.generation += 1;
  }

  private changed(sandbox: string | null, message: string): void {
    this.clock += 1;
    this.state.log.push({ at: this.clock, level: "info", sandbox, message });
    this.state.generation += 1;
  }

  private sandbox(name: string): SandboxView {
    return this.state.sandboxes.find((s) => s.settings.name === name) ?? refuse(`there is no sandbox named ${name}`, "notFound");
  }

  private forward(name: string, remotePort: number): ForwardView {
    return (
      this.sandbox(name).forwards.find((f) => f.spec.remotePort === remotePort) ??
      refuse(`${name} has no forward for port ${remotePort}`, "notFound")
    );
  }
}

export function offForward(spec: ForwardView["spec"]): ForwardView {
  return {
    spec,
    on: false,
    boundPort: null,
    active: 0,
    total: 0,
    bytesSent: 0,
    bytesReceived: 0,
    lastError: null,
    suggestedPort: null,
    reconnectingSecs: null,
  };
}
