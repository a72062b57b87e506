// Switching what the main pane shows.
import type { SandboxSettings } from "../bindings/SandboxSettings";
import { newForm } from "../sandboxForm";
import { afterNextDraw, changed, rememberChoices, setFeedback, state, place } from "../state";

export function showSandbox(name: string | null = state.selected): void {
  state.selected = name;
  rememberChoices();
  state.view = { kind: "sandbox" };
  state.confirmingRemove = null;
  changed();
}

/** Opens the add (settings null) or edit form, focused on its first field. `adding` with
 * settings: the Add form filled in (from `link`). */
export function openForm(settings: SandboxSettings | null, opts: { adding?: boolean; link?: string | null } = {}): void {
  setFeedback(place.form, null);
  state.view = { kind: "form", form: newForm(settings, opts) };
  afterNextDraw(() => document.getElementById("sb-name")?.focus());
}

export function openPreferences(): void {
  state.view = { kind: "prefs" };
  changed();
}
