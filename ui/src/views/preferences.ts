// The app's own settings; each change is saved at once.
import { html, nothing } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { IdeChoice } from "../bindings/IdeChoice";
import type { Preferences } from "../bindings/Preferences";
import { IDE_LABEL, IDES } from "../format";
import { act, pending, place, state } from "../state";
import { feedbackLine } from "./feedback";
import { showSandbox } from "./navigation";

export function preferencesView(saved: Preferences, demoAvailable: boolean, version: string) {
  // While a change is in flight, show it rather than the old value.
  const prefs = pending(place.prefs, "setPreferences")?.preferences ?? saved;
  const busy = state.busy.has(place.prefs);
  const save = (patch: Partial<Preferences>) =>
    act(place.prefs, { kind: "setPreferences", preferences: { ...saved, ...patch } });

  return html`<section class="card prefs" data-testid="preferences" aria-labelledby="prefs-title">
    <header class="card-head">
      <h1 id="prefs-title">Preferences</h1>
    </header>
    <div class="pref-row">
      <div>
        <label for="pref-ide">Default editor</label>
        <p class="muted small">What Connect opens.</p>
      </div>
      <select
        id="pref-ide"
        data-testid="pref-default-ide"
        ?disabled=${busy}
        @change=${(e: Event) => save({ defaultIde: (e.target as HTMLSelectElement).value as IdeChoice })}
      >
        ${IDES.map((ide) => html`<option value=${ide} ?selected=${ide === prefs.defaultIde}>${IDE_LABEL[ide]}</option>`)}
      </select>
    </div>
    <div class="pref-row">
      <div>
        <label for="pref-login">Start at login</label>
        <p class="muted small">Sandbox Forward starts in the tray, and auto-start forwards come up.</p>
      </div>
      <input
        id="pref-login"
        type="checkbox"
        role="switch"
        class="switch"
        data-testid="pref-start-at-login"
        .checked=${live(prefs.startAtLogin)}
        ?disabled=${busy}
        @change=${(e: Event) => save({ startAtLogin: (e.target as HTMLInputElement).checked })}
      />
    </div>
    <div class="pref-row">
      <div>
        <label for="pref-notify">Notifications</label>
        <p class="muted small">When a forward fails or a sign-in expires.</p>
      </div>
      <input
        id="pref-notify"
        type="checkbox"
        role="switch"
        class="switch"
        data-testid="pref-notifications"
        .checked=${live(prefs.notifications)}
        ?disabled=${busy}
        @change=${(e: Event) => save({ notifications: (e.target as HTMLInputElement).checked })}
      />
    </div>
    ${demoAvailable
      ? html`<div class="pref-row">
          <div>
            <span class="label">Demo sandbox</span>
            <p class="muted small">A sandbox on this computer, to try everything without a server.</p>
          </div>
          <button
            type="button"
            class="btn"
            data-testid="add-demo"
            ?disabled=${state.busy.has(place.prefs)}
            @click=${() => act(place.prefs, { kind: "addDemo" })}
          >
            Add the demo
          </button>
        </div>`
      : nothing}
    <div class="pref-row about" data-testid="about">
      <div>
        <span class="label">About</span>
        <p class="muted small">Sandbox Forward ${version}: SSH, IDEs and port forwards for remote sandboxes.</p>
      </div>
    </div>
    ${feedbackLine(place.prefs, "prefs")}
    <div class="form-actions">
      <button type="button" class="btn" data-testid="close-preferences" @click=${() => showSandbox()}>Done</button>
    </div>
  </section>`;
}
