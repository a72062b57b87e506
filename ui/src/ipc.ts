// The window's only door to the app: `rpc` carries a `Request` to the core (the tray process);
// `take_intents` asks the window process what it was asked to show (a link, "Add sandbox…"),
// announced by its "intent" event.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { ErrorCode } from "./bindings/ErrorCode";
import type { Intent } from "./bindings/Intent";
import type { Reply } from "./bindings/Reply";
import type { Request } from "./bindings/Request";

/** Sends one action; resolves with the state after it, rejects with an `ActionError`. */
export function call(request: Request): Promise<Reply> {
  return invoke<Reply>("rpc", { request });
}

/** What the window process was asked to show since the last call, oldest first. */
export function takeIntents(): Promise<Intent[]> {
  return invoke<Intent[]>("take_intents");
}

/** Calls `handler` whenever an intent waits (a link arrived, the tray's "Add sandbox…"). */
export function onIntent(handler: () => void): Promise<unknown> {
  return listen("intent", handler);
}

/** The kind of a failed call, to branch on (never on its sentence). Tauri itself rejects with a
 * plain string (an unknown command: a window and app out of step). */
export function errorCode(error: unknown): ErrorCode {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code as ErrorCode;
  }
  return typeof error === "string" ? "protocol" : "failed";
}

/** The sentence to show for a failed call. The core rejects with an `ActionError`
 * (`{message}`); Tauri itself rejects with a plain string (e.g. an unknown command). */
export function errorMessage(error: unknown): string {
  if (typeof error === "string" && error) return error;
  if (typeof error === "object" && error !== null && "message" in error) {
    const { message } = error;
    if (typeof message === "string" && message) return message;
  }
  return "The app's core gave no reason; see the activity log, or restart Sandbox Forward.";
}
