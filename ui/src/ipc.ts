// The window's only door to the app's core: one Tauri command, `rpc`, carrying a `Request`.
import { invoke } from "@tauri-apps/api/core";
import type { Reply } from "./bindings/Reply";
import type { Request } from "./bindings/Request";

/** Sends one action; resolves with the state after it, rejects with an `ActionError`. */
export function call(request: Request): Promise<Reply> {
  return invoke<Reply>("rpc", { request });
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
