// Add or edit a sandbox. Field mistakes are caught here and shown beside the field; what the
// core refuses is shown at the bottom of the form. Nothing is sent until the fields pass.
import { html, nothing } from "lit-html";
import { type AuthMode, type FormField, type SandboxForm, settingsFromForm, validateForm } from "../sandboxForm";
import { act, afterNextDraw, changed, place, state } from "../state";
import { showSandbox } from "./navigation";
import { prose } from "./prose";

const MODES: readonly { mode: AuthMode; label: string }[] = [
  { mode: "none", label: "None" },
  { mode: "oidc", label: "OpenID Connect (browser sign-in)" },
  { mode: "bearerFile", label: "Bearer token file" },
  { mode: "cookie", label: "Cookie" },
];

interface FieldOptions {
  field: FormField | "audience";
  label: string;
  hint?: string;
  placeholder?: string;
  type?: string;
  autocomplete?: string;
}

export function sandboxFormView(form: SandboxForm) {
  const saving = state.busy.has(place.form);
  const editing = form.original !== null;
  const failure = state.feedback.get(place.form);

  const field = (o: FieldOptions) => {
    const id = `sb-${o.field}`;
    const error = o.field === "audience" ? undefined : form.errors[o.field];
    const describedBy = error ? `${id}-error` : o.hint ? `${id}-hint` : undefined;
    return html`<div class="field ${error ? "invalid" : ""}">
      <label for=${id}>${o.label}</label>
      <input
        id=${id}
        type=${o.type ?? "text"}
        data-testid="field-${o.field}"
        autocomplete=${o.autocomplete ?? "off"}
        spellcheck="false"
        placeholder=${o.placeholder ?? nothing}
        aria-invalid=${error ? "true" : "false"}
        aria-describedby=${describedBy ?? nothing}
        .value=${form[o.field]}
        @input=${(e: Event) => {
          form[o.field] = (e.target as HTMLInputElement).value;
          if (o.field !== "audience" && form.errors[o.field]) {
            delete form.errors[o.field];
            changed();
          }
        }}
      />
      ${error
        ? html`<p class="field-error" id="${id}-error" data-testid="field-error-${o.field}">${error}</p>`
        : o.hint
          ? html`<p class="hint" id="${id}-hint">${o.hint}</p>`
          : nothing}
    </div>`;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const names = state.snapshot?.sandboxes.map((s) => s.settings.name) ?? [];
    form.errors = validateForm(form, names);
    if (Object.keys(form.errors).length > 0) {
      afterNextDraw(() => document.querySelector<HTMLElement>(".sandbox-form [aria-invalid=true]")?.focus());
      return;
    }
    const settings = settingsFromForm(form);
    // A name taken meanwhile (by the CLI, another window) belongs beside the Name field.
    const onError = (code: string, message: string) => {
      if (code !== "alreadyExists") return false;
      form.errors = { ...form.errors, name: message };
      afterNextDraw(() => document.getElementById("sb-name")?.focus());
      return true;
    };
    const reply = await act(
      place.form,
      { kind: "saveSandbox", original: form.original, settings },
      { toast: true, onError },
    );
    // Leave the form only if it is still the one shown (the user may have moved on meanwhile).
    if (reply && state.view.kind === "form" && state.view.form === form) showSandbox(settings.name);
  };

  const cancel = () => showSandbox();

  return html`<form
    class="card sandbox-form"
    data-testid="sandbox-form"
    novalidate
    aria-labelledby="form-title"
    @submit=${submit}
    @keydown=${(e: KeyboardEvent) => e.key === "Escape" && cancel()}
  >
    <header class="card-head">
      <h1 id="form-title" data-testid="form-title">${editing ? `Edit ${form.original}` : "Add a sandbox"}</h1>
      <p class="muted small">
        ${editing
          ? "Changes apply to new connections; a rename rewrites the ssh host name."
          : "The server runs the sandbox pods; ask your platform team for its address and sign-in."}
      </p>
    </header>

    ${form.fromLink !== null
      ? html`<div class="link-notice" role="note" data-testid="form-from-link">
          <p><strong>Filled in from a link.</strong> Check every value below: nothing is saved, connected or signed in until you add the sandbox.</p>
          <p class="muted small link-text" data-testid="form-link">${form.fromLink}</p>
        </div>`
      : nothing}

    ${field({ field: "name", label: "Name", hint: "Letters, digits, - and _. You will type ssh NAME.", placeholder: "my-sandbox" })}
    ${field({ field: "server", label: "Server", placeholder: "https://sandboxes.example.com", type: "url" })}

    <div class="field">
      <label for="sb-mode">Sign-in</label>
      <select
        id="sb-mode"
        data-testid="field-mode"
        @change=${(e: Event) => {
          form.mode = (e.target as HTMLSelectElement).value as AuthMode;
          changed();
        }}
      >
        ${MODES.map((m) => html`<option value=${m.mode} ?selected=${m.mode === form.mode}>${m.label}</option>`)}
      </select>
    </div>

    ${form.mode === "oidc"
      ? html`<fieldset class="auth-fields">
          <legend class="sr-only">OpenID Connect</legend>
          ${field({ field: "issuer", label: "Issuer URL", placeholder: "https://login.example.com/realms/dev", type: "url" })}
          ${field({ field: "clientId", label: "Client ID", placeholder: "sandbox-forward" })}
          ${field({ field: "scopes", label: "Scopes", hint: "Separated by spaces." })}
          ${field({ field: "audience", label: "Audience (optional)", hint: "Only if your server asks for one." })}
        </fieldset>`
      : nothing}
    ${form.mode === "bearerFile"
      ? html`<fieldset class="auth-fields">
          <legend class="sr-only">Bearer token file</legend>
          ${field({
            field: "tokenPath",
            label: "Token file",
            placeholder: "~/.config/sandbox/token",
            hint: "Re-read for every connection, so a tool can keep it fresh.",
          })}
        </fieldset>`
      : nothing}
    ${form.mode === "cookie"
      ? html`<fieldset class="auth-fields">
          <legend class="sr-only">Cookie</legend>
          ${field({ field: "cookieName", label: "Cookie name", placeholder: "_oauth2_proxy" })}
          ${field({
            field: "cookieValue",
            label: "Cookie value",
            type: "password",
            placeholder: form.cookieStored ? "unchanged" : undefined,
            hint: form.cookieStored
              ? "Leave empty to keep the stored value (kept only while the server stays the same)."
              : "Kept in this sandbox's settings file, readable only by you, and sent only to this server.",
          })}
        </fieldset>`
      : nothing}

    ${field({ field: "remoteFolder", label: "Remote folder", hint: "The folder in the pod that “Open in” opens." })}

    <div class="field">
      <label class="check-row">
        <input
          type="checkbox"
          data-testid="field-insecure-http"
          .checked=${form.allowInsecureHttp}
          @change=${(e: Event) => {
            form.allowInsecureHttp = (e.target as HTMLInputElement).checked;
            changed();
          }}
        />
        Allow insecure HTTP
      </label>
      <p class="hint">
        Sends credentials unencrypted to an http:// server or issuer that is not this computer. Only on a network you
        trust.
      </p>
    </div>

    ${failure?.tone === "error"
      ? html`<p class="form-error" role="alert" data-testid="form-error">${prose(failure.text)}</p>`
      : nothing}

    <div class="form-actions">
      <button type="button" class="btn ghost" data-testid="form-cancel" @click=${cancel}>Cancel</button>
      <button type="submit" class="btn primary" data-testid="form-save" ?disabled=${saving}>
        ${saving ? "Saving…" : editing ? "Save changes" : "Add sandbox"}
      </button>
    </div>
  </form>`;
}
