// The "Add forward" row as plain data, and the presets offered as quick-fill chips.
import type { ForwardSpec } from "./bindings/ForwardSpec";
import { parsePort } from "./validate";

export interface ForwardDraft {
  remotePort: string;
  /** Empty: the same as the remote port. */
  localPort: string;
  label: string;
  autoStart: boolean;
  errors: { remotePort?: string; localPort?: string };
}

export const PRESETS: readonly { label: string; port: number }[] = [
  { label: "vite", port: 5173 },
  { label: "Jupyter", port: 8888 },
  { label: "dlv", port: 2345 },
  { label: "debugpy", port: 5678 },
  { label: "node --inspect", port: 9229 },
];

export function emptyDraft(): ForwardDraft {
  return { remotePort: "", localPort: "", label: "", autoStart: false, errors: {} };
}

/** The spec to save, or the draft's field errors. */
export function specFromDraft(
  draft: ForwardDraft,
): { ok: true; spec: ForwardSpec } | { ok: false; errors: ForwardDraft["errors"] } {
  const remote = parsePort(draft.remotePort, 1024);
  const local = draft.localPort.trim() === "" ? remote : parsePort(draft.localPort, 0);
  if (typeof remote === "string" || typeof local === "string") {
    const errors: ForwardDraft["errors"] = {};
    if (typeof remote === "string") errors.remotePort = remote;
    if (typeof local === "string" && draft.localPort.trim() !== "") errors.localPort = local;
    return { ok: false, errors };
  }
  return {
    ok: true,
    spec: { remotePort: remote, localPort: local, label: draft.label.trim(), autoStart: draft.autoStart },
  };
}
