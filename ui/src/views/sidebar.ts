// The list of sandboxes with their live health, plus the app-wide buttons.
import { html, nothing } from "lit-html";
import type { SandboxView } from "../bindings/SandboxView";
import { act, changed, place, state } from "../state";
import { healthBadge } from "./badge";
import { openForm, openPreferences, showSandbox } from "./navigation";
import { prose } from "./prose";

export function sidebar() {
  const all = state.snapshot?.sandboxes ?? [];
  const needle = state.filter?.trim().toLowerCase() ?? "";
  const sandboxes = needle ? all.filter((s) => s.settings.name.toLowerCase().includes(needle)) : all;
  const refreshing = state.busy.has(place.refresh);
  return html`<aside class="sidebar">
    <header class="brand">
      <span class="logo" aria-hidden="true"></span>
      <span class="brand-name">Sandbox Forward</span>
    </header>
    ${all.length
      ? html`<div class="list-head">
          <span>Sandboxes</span>
          <button
            class="link-btn"
            type="button"
            data-testid="refresh"
            title="Check every sandbox now instead of at the next tick"
            ?disabled=${refreshing}
            @click=${() => act(place.refresh, { kind: "refresh" })}
          >
            ${refreshing ? "Checking…" : "Check now"}
          </button>
        </div>`
      : nothing}
    ${state.filter !== null
      ? html`<div class="list-filter">
          <input
            id="sandbox-filter"
            type="search"
            placeholder="Filter sandboxes"
            aria-label="Filter sandboxes"
            data-testid="sandbox-filter"
            .value=${state.filter}
            @input=${(e: Event) => {
              state.filter = (e.target as HTMLInputElement).value;
              changed();
            }}
            @keydown=${(e: KeyboardEvent) => {
              if (e.key !== "Escape") return;
              state.filter = null;
              changed();
            }}
          />
          ${needle && !sandboxes.length ? html`<p class="muted small" data-testid="filter-empty">No sandbox matches.</p>` : nothing}
        </div>`
      : nothing}
    <nav class="sandbox-list" aria-label="Sandboxes">
      <ul>
        ${sandboxes.map(item)}
      </ul>
    </nav>
    <footer class="sidebar-foot">
      <button class="btn wide" type="button" data-testid="add-sandbox" @click=${() => openForm(null)}>
        <span aria-hidden="true">+</span> Add sandbox
      </button>
      <button
        class="btn ghost wide"
        type="button"
        data-testid="open-preferences"
        aria-pressed=${state.view.kind === "prefs"}
        @click=${openPreferences}
      >
        Preferences
      </button>
    </footer>
  </aside>`;
}

function item(sandbox: SandboxView) {
  const name = sandbox.settings.name;
  const current = state.view.kind === "sandbox" && state.selected === name;
  return html`<li>
    <button
      type="button"
      class="sandbox-item ${current ? "current" : ""}"
      data-testid="sandbox-item-${name}"
      aria-current=${current ? "page" : "false"}
      @click=${() => showSandbox(name)}
    >
      <span class="item-top">
        <span class="item-name">${name}</span>
        ${sandbox.demo ? html`<span class="tag">demo</span>` : nothing}
      </span>
      ${healthBadge(sandbox.status.health, `sandbox-status-${name}`)}
      <span class="item-detail">${prose(sandbox.status.detail)}</span>
    </button>
  </li>`;
}
