// A sandbox's port forwards: one row each with its switch and live numbers, then "Add forward".
import { html, nothing } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { ForwardSpec } from "../bindings/ForwardSpec";
import type { ForwardView } from "../bindings/ForwardView";
import type { SandboxView } from "../bindings/SandboxView";
import { humanBytes, localPortText } from "../format";
import { type ForwardDraft, PRESETS, emptyDraft, specFromDraft } from "../forwardDraft";
import { act, afterNextDraw, changed, pending, place, state, toast } from "../state";
import { feedbackLine } from "./feedback";
import { prose } from "./prose";

export function forwardsSection(sandbox: SandboxView) {
  const name = sandbox.settings.name;
  return html`<section class="card ports" aria-labelledby="ports-title" data-testid="ports">
    <header class="card-head">
      <h2 id="ports-title">Ports</h2>
      <p class="muted small">Forward a port in the pod to 127.0.0.1 on this computer.</p>
    </header>
    ${sandbox.forwards.length === 0
      ? html`<p class="muted none" data-testid="no-forwards">No forwards yet — add one below.</p>`
      : html`<ul class="forwards">
          ${sandbox.forwards.map((f) => row(name, f))}
        </ul>`}
    ${detectedPorts(sandbox)}
    ${addForm(sandbox)}
  </section>`;
}

function row(name: string, forward: ForwardView) {
  const { spec } = forward;
  const port = spec.remotePort;
  const at = place.forward(name, port);
  const busy = state.busy.has(at);
  // While a request is in flight, show what the user asked for rather than the old state.
  const on = pending(at, "setForward")?.on ?? forward.on;
  const autoStart = pending(at, "saveForward")?.forward.autoStart ?? spec.autoStart;
  const what = spec.label || `port ${port}`;
  const sent = humanBytes(forward.bytesSent);
  const received = humanBytes(forward.bytesReceived);
  const action = state.feedback.get(at);
  const actionError = action?.tone === "error" ? action.text : null;
  const errors = [actionError, forward.lastError].filter((e, i, all): e is string => !!e && all.indexOf(e) === i);

  return html`<li class="forward ${forward.on ? "is-on" : ""}" data-testid="forward-row-${port}">
    <div class="forward-main">
      <input
        type="checkbox"
        role="switch"
        class="switch"
        data-testid="forward-toggle-${port}"
        aria-label="Forward ${what} (pod port ${port})"
        .checked=${live(on)}
        ?disabled=${busy}
        @change=${(e: Event) =>
          act(at, { kind: "setForward", name, remotePort: port, on: (e.target as HTMLInputElement).checked })}
      />
      <div class="service">
        <span class="service-label">${spec.label || html`<span class="muted">Port ${port}</span>`}</span>
        <span class="address mono" data-testid="forward-address-${port}"
          ><span>localhost:${localPortText(forward)}</span> <span>→ :${port}</span></span
        >
      </div>
      <div class="stats">
        ${forward.on && forward.reconnectingSecs !== null
          ? html`<span class="reconnecting" role="status" data-testid="forward-reconnecting-${port}"
              title="The network dropped a connection's tunnel; it resumes where it stopped once the sandbox is reachable"
              >reconnecting (${forward.reconnectingSecs} s)…</span
            >`
          : nothing}
        <span class="num" title="Connections: active now / since it started"
          ><span data-testid="forward-conns-${port}">${forward.active} / ${forward.total}</span>
          <span class="muted">connections</span></span
        >
        <span class="num traffic" data-testid="forward-traffic-${port}" title="Sent to the pod ↑, received from it ↓"
          >↑ ${sent} ↓ ${received}</span
        >
      </div>
      <div class="row-tools">
        <label class="check">
          <input
            type="checkbox"
            data-testid="forward-autostart-${port}"
            aria-label="Start forward ${what} with the app"
            .checked=${live(autoStart)}
            ?disabled=${busy}
            @change=${(e: Event) =>
              act(at, {
                kind: "saveForward",
                name,
                forward: { ...spec, autoStart: (e.target as HTMLInputElement).checked },
              })}
          />
          <span class="check-text">Auto-start</span>
        </label>
        ${forward.on && forward.boundPort !== null
          ? html`<span class="row-links">
              <button
                type="button"
                class="link-btn"
                data-testid="forward-open-${port}"
                aria-label="Open ${what} in the browser"
                @click=${() => act(at, { kind: "openForward", name, remotePort: port })}
              >
                Open
              </button>
              <button
                type="button"
                class="link-btn"
                data-testid="forward-copy-${port}"
                aria-label="Copy the URL of ${what}"
                @click=${() => copyUrl(forward.boundPort as number)}
              >
                Copy URL
              </button>
            </span>`
          : nothing}
        <button
          type="button"
          class="link-btn"
          data-testid="forward-edit-${port}"
          aria-label="Edit forward ${what} (pod port ${port})"
          ?disabled=${busy}
          @click=${() => editForward(name, spec)}
        >
          Edit
        </button>
        <button
          type="button"
          class="link-btn danger"
          data-testid="forward-remove-${port}"
          aria-label="Remove forward ${what} (pod port ${port})"
          ?disabled=${busy}
          @click=${() => act(at, { kind: "removeForward", name, remotePort: port }, { toast: true })}
        >
          Remove
        </button>
      </div>
    </div>
    ${errors.length
      ? html`<div class="forward-error" role="alert" data-testid="forward-error-${port}">
          ${errors.map((e) => html`<p>${prose(e)}</p>`)}
          ${forward.suggestedPort !== null && !forward.on
            ? html`<button
                type="button"
                class="btn small"
                data-testid="forward-use-port-${port}"
                ?disabled=${busy}
                @click=${() => useLocalPort(name, spec, forward.suggestedPort as number)}
              >
                Use port ${forward.suggestedPort}
              </button>`
            : nothing}
        </div>`
      : nothing}
    ${action?.tone === "notice"
      ? html`<p class="forward-notice" role="status" data-testid="forward-notice-${port}">${prose(action.text)}</p>`
      : nothing}
  </li>`;
}

/** "Detected in the pod": what listens there, each not yet forwarded one a click away. */
function detectedPorts(sandbox: SandboxView) {
  const name = sandbox.settings.name;
  const at = place.detect(name);
  const scanning = state.busy.has(at);
  // The scan asked for here, else the app's own (every 30 s while the sandbox is ready).
  const found =
    state.detected.get(name) ?? (sandbox.detectedPorts.length ? { ports: sandbox.detectedPorts, overSsh: false } : undefined);
  const configured = new Set(sandbox.forwards.map((f) => f.spec.remotePort));
  const offers = found?.ports.filter((p) => !configured.has(p.port)) ?? [];
  const scan = async () => {
    const reply = await act(at, { kind: "listeningPorts", name });
    if (reply?.listeningPorts) state.detected.set(name, reply.listeningPorts);
    changed();
  };
  return html`<div class="detected" data-testid="detected">
    <div class="detected-head">
      <span class="add-title">Detected in the pod</span>
      <button type="button" class="link-btn" data-testid="scan-ports" ?disabled=${scanning} @click=${scan}>
        ${scanning ? "Scanning…" : found ? "Scan again" : "Scan ports"}
      </button>
    </div>
    ${found && offers.length
      ? html`<ul class="chips" aria-label="Ports listening in the pod">
          ${offers.map(
            (p) => html`<li>
              <button
                type="button"
                class="chip"
                data-testid="detected-${p.port}"
                @click=${() => forwardDetected(sandbox, p.port, p.process)}
              >
                ${p.port} <span class="muted">${p.process ?? ""}</span> — Forward
              </button>
            </li>`,
          )}
        </ul>`
      : nothing}
    ${found && !offers.length
      ? html`<p class="muted small" data-testid="detected-none">
          ${found.ports.length ? "Every listening port is forwarded." : "Nothing listens on a port from 1024 up."}
        </p>`
      : nothing}
    ${autoForward(sandbox)} ${feedbackLine(at, "detect")}
  </div>`;
}

/** The sandbox's auto-forward setting: ports that start listening get a forward as found. */
function autoForward(sandbox: SandboxView) {
  const name = sandbox.settings.name;
  const at = place.autoForward(name);
  const on = pending(at, "setAutoForward")?.on ?? sandbox.autoForward;
  return html`<div class="action-feedback">
    <label class="check-row small">
      <input
        type="checkbox"
        data-testid="auto-forward"
        .checked=${live(on)}
        ?disabled=${state.busy.has(at)}
        @change=${(e: Event) => act(at, { kind: "setAutoForward", name, on: (e.target as HTMLInputElement).checked })}
      />
      Forward new ports automatically
    </label>
    <p class="hint">
      A port that starts listening in the pod gets a forward on the same local port (a free one if that is taken).
    </p>
    ${feedbackLine(at, "auto-forward")}
  </div>`;
}

/** Saves and starts a forward to a detected port: the same local port, or any free one on a
 * sandbox served from this computer (there the same port is the pod's own listener). */
async function forwardDetected(sandbox: SandboxView, port: number, process: string | null) {
  const name = sandbox.settings.name;
  const at = place.forward(name, port);
  const spec = { remotePort: port, localPort: sandbox.demo ? 0 : port, label: process ?? "", autoStart: false };
  if (await act(place.detect(name), { kind: "saveForward", name, forward: spec })) {
    await act(at, { kind: "setForward", name, remotePort: port, on: true });
  }
}

/** Puts a running forward's local URL on the clipboard. */
async function copyUrl(localPort: number) {
  const url = `http://localhost:${localPort}/`;
  try {
    await navigator.clipboard.writeText(url);
    toast(`Copied ${url}`);
  } catch (e) {
    toast(`Cannot copy ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Takes the free port the core offered for a taken one, and starts the forward there. */
async function useLocalPort(name: string, spec: ForwardSpec, localPort: number) {
  const at = place.forward(name, spec.remotePort);
  if (await act(at, { kind: "saveForward", name, forward: { ...spec, localPort } })) {
    await act(at, { kind: "setForward", name, remotePort: spec.remotePort, on: true });
  }
}

/** Loads a forward into the form below, where its local port, label and auto-start change. */
function editForward(name: string, spec: ForwardSpec) {
  state.forwardDrafts.set(name, {
    remotePort: String(spec.remotePort),
    localPort: spec.localPort === spec.remotePort ? "" : String(spec.localPort),
    label: spec.label,
    autoStart: spec.autoStart,
    errors: {},
  });
  changed();
  afterNextDraw(() => document.getElementById("fw-local")?.focus());
}

function addForm(sandbox: SandboxView) {
  const name = sandbox.settings.name;
  const at = place.addForward(name);
  let draft = state.forwardDrafts.get(name);
  if (!draft) {
    draft = emptyDraft();
    state.forwardDrafts.set(name, draft);
  }
  const d: ForwardDraft = draft;
  const saving = state.busy.has(at);
  const configured = new Set(sandbox.forwards.map((f) => f.spec.remotePort));
  // Saving a pod port that has a forward replaces that forward: the form edits it.
  const editing = configured.has(Number(d.remotePort.trim()));
  const presets = PRESETS.filter((p) => !configured.has(p.port));
  const edit = (patch: Partial<ForwardDraft>) => {
    Object.assign(d, patch);
    changed();
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    const checked = specFromDraft(d);
    d.errors = checked.ok ? {} : checked.errors;
    if (!checked.ok) {
      changed();
      afterNextDraw(() => document.querySelector<HTMLElement>(".add-forward [aria-invalid=true]")?.focus());
      return;
    }
    const reply = await act(at, { kind: "saveForward", name, forward: checked.spec });
    if (reply) {
      state.forwardDrafts.set(name, emptyDraft());
      changed();
    }
  };

  return html`<form class="add-forward" data-testid="forward-form" novalidate @submit=${submit}>
    <h3 class="add-title" data-testid="forward-form-title">${editing ? `Edit forward :${d.remotePort}` : "Add forward"}</h3>
    ${presets.length
      ? html`<div class="chips" role="group" aria-label="Common ports">
          ${presets.map(
            (p) => html`<button
              type="button"
              class="chip"
              data-testid="preset-${p.port}"
              @click=${() => edit({ remotePort: String(p.port), localPort: "", label: p.label, errors: {} })}
            >
              ${p.label} <span class="muted">${p.port}</span>
            </button>`,
          )}
        </div>`
      : nothing}
    <div class="add-fields">
      <div class="field compact ${d.errors.remotePort ? "invalid" : ""}">
        <label for="fw-remote">Pod port</label>
        <input
          id="fw-remote"
          inputmode="numeric"
          placeholder="5173"
          data-testid="forward-remote"
          aria-invalid=${d.errors.remotePort ? "true" : "false"}
          aria-describedby=${d.errors.remotePort ? "fw-remote-error" : nothing}
          .value=${d.remotePort}
          @input=${(e: Event) => edit({ remotePort: (e.target as HTMLInputElement).value, errors: {} })}
        />
      </div>
      <div class="field compact ${d.errors.localPort ? "invalid" : ""}">
        <label for="fw-local">Local port</label>
        <input
          id="fw-local"
          inputmode="numeric"
          placeholder="same"
          title="Empty: the same as the pod port. 0: any free port."
          data-testid="forward-local"
          aria-invalid=${d.errors.localPort ? "true" : "false"}
          aria-describedby=${d.errors.localPort ? "fw-local-error" : nothing}
          .value=${d.localPort}
          @input=${(e: Event) => edit({ localPort: (e.target as HTMLInputElement).value, errors: {} })}
        />
      </div>
      <div class="field compact grow">
        <label for="fw-label">Label</label>
        <input
          id="fw-label"
          placeholder="vite"
          data-testid="forward-label"
          .value=${d.label}
          @input=${(e: Event) => edit({ label: (e.target as HTMLInputElement).value })}
        />
      </div>
      <label class="check add-check">
        <input
          type="checkbox"
          data-testid="forward-new-autostart"
          .checked=${live(d.autoStart)}
          @change=${(e: Event) => edit({ autoStart: (e.target as HTMLInputElement).checked })}
        />
        Auto-start
      </label>
      <button type="submit" class="btn" data-testid="forward-add" ?disabled=${saving}>
        ${saving ? (editing ? "Saving…" : "Adding…") : editing ? "Save" : "Add"}
      </button>
    </div>
    ${d.errors.remotePort
      ? html`<p class="field-error" id="fw-remote-error" data-testid="forward-remote-error">
          Pod port: ${d.errors.remotePort}
        </p>`
      : nothing}
    ${d.errors.localPort
      ? html`<p class="field-error" id="fw-local-error" data-testid="forward-local-error">
          Local port: ${d.errors.localPort}
        </p>`
      : nothing}
    ${feedbackLine(at, "forward-form")}
  </form>`;
}
