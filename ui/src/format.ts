// Pure wording and number formatting: what the user reads for each protocol value.
import type { AuthSettings } from "./bindings/AuthSettings";
import type { ForwardView } from "./bindings/ForwardView";
import type { Health } from "./bindings/Health";
import type { IdeChoice } from "./bindings/IdeChoice";

export const HEALTH_LABEL: Record<Health, string> = {
  ready: "Ready",
  notConnected: "Not connected",
  forwarding: "Forwarding",
  needsSignIn: "Needs sign-in",
  unreachable: "Unreachable",
  unknown: "Checking…",
};

/** Badge colour family per health: good, idle, attention, bad. */
export const HEALTH_TONE: Record<Health, "ok" | "idle" | "warn" | "bad"> = {
  ready: "ok",
  notConnected: "idle",
  forwarding: "ok",
  needsSignIn: "warn",
  unreachable: "bad",
  unknown: "idle",
};

export const IDES: readonly IdeChoice[] = ["vsCode", "cursor", "gateway", "zed", "terminal"];

export const IDE_LABEL: Record<IdeChoice, string> = {
  vsCode: "VS Code",
  cursor: "Cursor",
  gateway: "JetBrains Gateway",
  zed: "Zed",
  terminal: "Terminal",
};

export function authSummary(auth: AuthSettings): string {
  switch (auth.mode) {
    case "none":
      return "None";
    case "oidc":
      return `OpenID Connect · ${auth.issuer}`;
    case "bearerFile":
      return `Bearer token file · ${auth.path}`;
    case "cookie":
      return `Cookie · ${auth.name}`;
  }
}

/** 1023 B, 1.5 KiB, 12 KiB, 3.2 MiB … (binary units, as byte counters are). */
export function humanBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} B`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Local wall-clock time of an epoch-seconds instant. */
export function clockTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** The local side of a forward: the bound port while on, else the configured one ("auto" = any). */
export function localPortText(forward: ForwardView): string {
  if (forward.on && forward.boundPort !== null) return String(forward.boundPort);
  return forward.spec.localPort === 0 ? "auto" : String(forward.spec.localPort);
}
