// First run: what a sandbox is and the one thing to do.
import { html } from "lit-html";
import { openForm } from "./navigation";

export function emptyView() {
  return html`<section class="empty" data-testid="empty-state" aria-labelledby="empty-title">
    <div class="empty-art" aria-hidden="true"></div>
    <h1 id="empty-title">No sandboxes yet</h1>
    <p>
      Add a sandbox with its server's address and how you sign in. Connect then sets up
      <code>ssh NAME</code> and opens your editor in the pod, and you can forward the pod's ports to
      this computer.
    </p>
    <button class="btn primary" type="button" data-testid="empty-add-sandbox" @click=${() => openForm(null)}>
      Add sandbox
    </button>
  </section>`;
}
