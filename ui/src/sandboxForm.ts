// The add/edit sandbox form as plain data: built from settings, checked, turned back into settings.
import type { AuthSettings } from "./bindings/AuthSettings";
import type { SandboxSettings } from "./bindings/SandboxSettings";
import { checkFolder, checkHttpUrl, checkName, checkRequired, checkServer } from "./validate";

export type AuthMode = AuthSettings["mode"];

export const DEFAULT_SCOPES = "openid offline_access";
export const DEFAULT_FOLDER = "/workspace";

export interface SandboxForm {
  /** The name being edited; null when adding. */
  original: string | null;
  name: string;
  server: string;
  remoteFolder: string;
  mode: AuthMode;
  issuer: string;
  clientId: string;
  scopes: string;
  audience: string;
  tokenPath: string;
  cookieName: string;
  cookieValue: string;
  /** A cookie is stored already: its value never comes back, and an empty one keeps it. */
  cookieStored: boolean;
  /** The link that filled this Add form, shown above it. */
  fromLink: string | null;
  /** Credentials may go unencrypted to an http:// server or issuer off this computer. */
  allowInsecureHttp: boolean;
  errors: Partial<Record<FormField, string>>;
}

export type FormField =
  | "name"
  | "server"
  | "remoteFolder"
  | "issuer"
  | "clientId"
  | "scopes"
  | "tokenPath"
  | "cookieName"
  | "cookieValue";

/** The form for `settings`: editing them, or (`adding`) a new sandbox filled in with them. */
export function newForm(settings: SandboxSettings | null, opts: { adding?: boolean; link?: string | null } = {}): SandboxForm {
  const form: SandboxForm = {
    original: opts.adding ? null : (settings?.name ?? null),
    fromLink: opts.link ?? null,
    name: settings?.name ?? "",
    server: settings?.server ?? "",
    remoteFolder: settings?.remoteFolder ?? DEFAULT_FOLDER,
    mode: settings?.auth.mode ?? "none",
    issuer: "",
    clientId: "",
    scopes: DEFAULT_SCOPES,
    audience: "",
    tokenPath: "",
    cookieName: "",
    cookieValue: "",
    cookieStored: false,
    allowInsecureHttp: settings?.allowInsecureHttp ?? false,
    errors: {},
  };
  const auth = settings?.auth;
  if (auth?.mode === "oidc") {
    Object.assign(form, {
      issuer: auth.issuer,
      clientId: auth.clientId,
      scopes: auth.scopes.join(" "),
      audience: auth.audience ?? "",
    });
  } else if (auth?.mode === "bearerFile") {
    form.tokenPath = auth.path;
  } else if (auth?.mode === "cookie") {
    form.cookieName = auth.name;
    form.cookieStored = true;
  }
  return form;
}

/** Field errors for the current values (only the fields of the chosen auth mode count). */
export function validateForm(form: SandboxForm, existingNames: readonly string[]): SandboxForm["errors"] {
  const taken = existingNames.filter((n) => n !== form.original);
  const found: Record<FormField, string | null> = {
    name: checkName(form.name.trim(), taken),
    server: checkServer(form.server.trim()),
    remoteFolder: checkFolder(form.remoteFolder.trim()),
    issuer: form.mode === "oidc" ? checkHttpUrl(form.issuer.trim(), "issuer URL") : null,
    clientId: form.mode === "oidc" ? checkRequired(form.clientId.trim(), "client ID") : null,
    scopes: form.mode === "oidc" && !form.scopes.trim() ? `Enter at least one scope, e.g. ${DEFAULT_SCOPES}.` : null,
    tokenPath: form.mode === "bearerFile" ? checkRequired(form.tokenPath.trim(), "path of the token file") : null,
    cookieName: form.mode === "cookie" ? checkRequired(form.cookieName.trim(), "cookie's name") : null,
    cookieValue:
      form.mode === "cookie" && !form.cookieStored ? checkRequired(form.cookieValue, "cookie's value") : null,
  };
  const errors: SandboxForm["errors"] = {};
  for (const [field, message] of Object.entries(found) as [FormField, string | null][]) {
    if (message) errors[field] = message;
  }
  return errors;
}

export function settingsFromForm(form: SandboxForm): SandboxSettings {
  return {
    name: form.name.trim(),
    server: form.server.trim(),
    auth: authFromForm(form),
    remoteFolder: form.remoteFolder.trim(),
    allowInsecureHttp: form.allowInsecureHttp,
  };
}

function authFromForm(form: SandboxForm): AuthSettings {
  switch (form.mode) {
    case "none":
      return { mode: "none" };
    case "oidc":
      return {
        mode: "oidc",
        issuer: form.issuer.trim(),
        clientId: form.clientId.trim(),
        scopes: form.scopes.split(/\s+/).filter(Boolean),
        audience: form.audience.trim() || null,
      };
    case "bearerFile":
      return { mode: "bearerFile", path: form.tokenPath.trim() };
    case "cookie":
      // An empty value tells the core to keep the stored one.
      return { mode: "cookie", name: form.cookieName.trim(), value: form.cookieValue };
  }
}
