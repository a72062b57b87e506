// Keyboard shortcuts of the window, as desktop apps have them: Ctrl (⌘ on macOS) + N adds a
// sandbox, + , opens Preferences, + F filters the sandbox list.
import { afterNextDraw, changed, state } from "./state";
import { openForm, openPreferences } from "./views/navigation";

export function installShortcuts(target: Window = window): void {
  target.addEventListener("keydown", (e) => {
    const mac = navigator.platform.startsWith("Mac");
    if (!(mac ? e.metaKey : e.ctrlKey) || e.altKey || e.shiftKey) return;
    switch (e.key.toLowerCase()) {
      case "n":
        openForm(null);
        break;
      case ",":
        openPreferences();
        break;
      case "f":
        state.filter = state.filter ?? "";
        changed();
        afterNextDraw(() => document.getElementById("sandbox-filter")?.focus());
        break;
      default:
        return;
    }
    e.preventDefault();
  });
}
