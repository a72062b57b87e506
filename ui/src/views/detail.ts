// One sandbox: its status, what can be done with it, its settings and its ports.
import { html, nothing } from "lit-html";
import type { IdeChoice } from "../bindings/IdeChoice";
import type { Preferences } from "../bindings/Preferences";
import type { SandboxView } from "../bindings/SandboxView";
import { IDE_LABEL, IDES, authSummary, clockTime } from "../format";
import { act, afterNextDraw, changed, place, rememberChoices, state } from "../state";
import { healthBadge } from "./badge";
import { feedbackLine } from "./feedback";
import { forwardsSection } from "./forwards";
import { openForm } from "./navigation";
import { prose } from "./prose";

export function detailView(sandbox: SandboxView, preferences: Preferences) {
  const { settings, status } = sandbox;
  return html`<article class="detail" data-testid="detail" aria-labelledby="detail-title">
    <header class="detail-head">
      <div class="title-row">
        <h1 id="detail-title" data-testid="detail-name">${settings.name}</h1>
        ${sandbox.demo ? html`<span class="tag">demo</span>` : nothing}
        ${healthBadge(status.health, "detail-health")}
      </div>
      <p class="status-detail" data-testid="detail-status">${prose(status.detail)}</p>
    </header>
    ${state.confirmingRemove === settings.name ? confirmRemove(settings.name) : actions(sandbox, preferences)}
    <dl class="facts card">
      <div><dt>Server</dt><dd data-testid="detail-server">${settings.server}</dd></div>
      <div>
        <dt>Sign-in</dt>
        <dd data-testid="detail-auth">
          ${authSummary(settings.auth)}
          ${status.signedIn === null ? nothing : html` — ${status.signedIn ? "signed in" : "signed out"}`}
        </dd>
      </div>
      <div><dt>Remote folder</dt><dd class="mono">${settings.remoteFolder}</dd></div>
      <div>
        <dt>SSH</dt>
        <dd>
          ${status.keyRegistered
            ? html`<code>ssh ${settings.name}</code>`
            : html`<span class="muted">Not set up yet — Connect sets it up.</span>`}
          ${status.checkedAt === null
            ? nothing
            : html`<span class="muted small">· checked ${clockTime(status.checkedAt)}</span>`}
        </dd>
      </div>
    </dl>
    ${forwardsSection(sandbox)}
  </article>`;
}

function actions(sandbox: SandboxView, preferences: Preferences) {
  const name = sandbox.settings.name;
  const at = {
    connect: place.actions(name, "connect"),
    openIn: place.actions(name, "openIn"),
    sign: place.actions(name, "sign"),
  };
  const connecting = state.busy.has(at.connect);
  const opening = state.busy.has(at.openIn);
  const signing = state.busy.has(at.sign);
  const ide = state.openIn ?? preferences.defaultIde;
  const oidc = sandbox.settings.auth.mode === "oidc";

  return html`<div class="actions" data-testid="connect-area">
    <div class="action-row">
      <button
        type="button"
        class="btn primary"
        data-testid="connect"
        ?disabled=${connecting}
        title="Set up ssh ${name} and open ${IDE_LABEL[preferences.defaultIde]}"
        @click=${() => act(at.connect, { kind: "connect", name })}
      >
        ${connecting ? "Connecting…" : "Connect"}
      </button>
      <span class="split">
        <label class="inline-label" for="open-in-ide">Open in</label>
        <select
          id="open-in-ide"
          data-testid="open-in-select"
          @change=${(e: Event) => {
            state.openIn = (e.target as HTMLSelectElement).value as IdeChoice;
            rememberChoices();
            changed();
          }}
        >
          ${IDES.map((choice) => html`<option value=${choice} ?selected=${choice === ide}>${IDE_LABEL[choice]}</option>`)}
        </select>
        <button
          type="button"
          class="btn"
          data-testid="open-in"
          ?disabled=${opening}
          @click=${() => act(at.openIn, { kind: "openIn", name, ide })}
        >
          ${opening ? "Opening…" : "Open"}
        </button>
      </span>
      ${oidc
        ? sandbox.status.signedIn
          ? html`<button
              type="button"
              class="btn"
              data-testid="sign-out"
              ?disabled=${signing}
              @click=${() => act(at.sign, { kind: "signOut", name })}
            >
              ${signing ? "Signing out…" : "Sign out"}
            </button>`
          : html`<button
              type="button"
              class="btn"
              data-testid="sign-in"
              ?disabled=${signing}
              @click=${() => act(at.sign, { kind: "signIn", name })}
            >
              ${signing ? "Finish in your browser…" : "Sign in"}
            </button>`
        : nothing}
      <span class="split end">
        <button type="button" class="btn ghost" data-testid="edit-sandbox" @click=${() => openForm(sandbox.settings)}>
          Edit
        </button>
        <button
          type="button"
          class="btn ghost danger"
          data-testid="remove-sandbox"
          @click=${() => {
            state.confirmingRemove = name;
            afterNextDraw(() => document.querySelector<HTMLElement>("[data-testid=cancel-remove]")?.focus());
          }}
        >
          Remove…
        </button>
      </span>
    </div>
    <div class="action-feedback">
      ${feedbackLine(at.connect, "connect")} ${feedbackLine(at.openIn, "open-in")} ${feedbackLine(at.sign, "sign")}
    </div>
  </div>`;
}

/** Removing forgets keys, sign-in and settings: ask inside the window, not with a modal. */
function confirmRemove(name: string) {
  const at = place.actions(name, "remove");
  const removing = state.busy.has(at);
  const cancel = () => {
    state.confirmingRemove = null;
    afterNextDraw(() => document.querySelector<HTMLElement>("[data-testid=remove-sandbox]")?.focus());
  };
  return html`<div
    class="actions confirm"
    role="alertdialog"
    aria-labelledby="confirm-title"
    data-testid="confirm-remove-panel"
    @keydown=${(e: KeyboardEvent) => e.key === "Escape" && cancel()}
  >
    <p id="confirm-title">
      <strong>Remove ${name}?</strong> Its forwards stop, and its key, sign-in, settings and
      <code>ssh ${name}</code> entry are deleted from this computer. The pod itself is not touched.
    </p>
    <div class="action-row">
      <button
        type="button"
        class="btn danger-solid"
        data-testid="confirm-remove"
        ?disabled=${removing}
        @click=${() => act(at, { kind: "removeSandbox", name }, { toast: true })}
      >
        ${removing ? "Removing…" : `Remove ${name}`}
      </button>
      <button type="button" class="btn" data-testid="cancel-remove" @click=${cancel}>Cancel</button>
    </div>
    ${feedbackLine(at, "remove")}
  </div>`;
}
