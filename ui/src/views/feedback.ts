// The line that shows an action's outcome at the place the user acted.
import { html, nothing } from "lit-html";
import { setFeedback, state } from "../state";
import { prose } from "./prose";

/** Renders the feedback at `at`, tagged `${testid}-error` or `${testid}-notice`. */
export function feedbackLine(at: string, testid: string) {
  const feedback = state.feedback.get(at);
  if (!feedback) return nothing;
  const error = feedback.tone === "error";
  return html`<div class="feedback ${feedback.tone}" role=${error ? "alert" : "status"}>
    <span data-testid="${testid}-${feedback.tone}">${prose(feedback.text)}</span>
    ${error
      ? html`<button type="button" class="dismiss" aria-label="Dismiss" title="Dismiss" @click=${() => setFeedback(at, null)}>
          ×
        </button>`
      : nothing}
  </div>`;
}
