// What the window remembers when it is closed and opened again (the WebView's own storage, per
// user): the selected sandbox and the "Open in" choice. Nothing secret goes here.
import type { IdeChoice } from "./bindings/IdeChoice";
import { IDES } from "./format";

const KEY = "sandbox-forward.window";

export interface Remembered {
  selected: string | null;
  openIn: IdeChoice | null;
}

export function recall(): Remembered {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "{}") as Partial<Remembered>;
    return {
      selected: typeof saved.selected === "string" ? saved.selected : null,
      openIn: IDES.includes(saved.openIn as IdeChoice) ? (saved.openIn as IdeChoice) : null,
    };
  } catch {
    return { selected: null, openIn: null };
  }
}

export function remember(now: Remembered): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(now));
  } catch {
    // Storage can be full or disabled: forgetting the selection is harmless.
  }
}
