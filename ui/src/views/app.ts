// The window's layout: sidebar, main pane (one view at a time), activity log, toasts.
import { html, nothing } from "lit-html";
import { place, selectedSandbox, state } from "../state";
import { detailView } from "./detail";
import { emptyView } from "./empty";
import { feedbackLine } from "./feedback";
import { sandboxFormView } from "./form";
import { logPanel } from "./log";
import { preferencesView } from "./preferences";
import { sidebar } from "./sidebar";
import { prose } from "./prose";

export function app() {
  return html`<div class="shell">
      ${sidebar()}
      <main class="main">
        ${state.lostContact !== null
          ? html`<div class="banner" role="alert" data-testid="lost-contact">
              Can't reach Sandbox Forward's core: ${state.lostContact}
            </div>`
          : nothing}
        ${feedbackLine(place.link, "link")}
        <div class="content">${content()}</div>
        ${logPanel()}
      </main>
    </div>
    <div class="toasts" aria-live="polite">
      ${state.toasts.map((t) => html`<div class="toast" data-testid="toast">${prose(t.text)}</div>`)}
    </div>`;
}

function content() {
  const snapshot = state.snapshot;
  if (!snapshot) return html`<p class="loading">Loading…</p>`;
  switch (state.view.kind) {
    case "form":
      return sandboxFormView(state.view.form);
    case "prefs":
      return preferencesView(snapshot.preferences, snapshot.demoAvailable, snapshot.version);
    case "sandbox": {
      const sandbox = selectedSandbox();
      return sandbox ? detailView(sandbox, snapshot.preferences) : emptyView();
    }
  }
}
