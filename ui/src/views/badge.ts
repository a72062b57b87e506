import { html } from "lit-html";
import type { Health } from "../bindings/Health";
import { HEALTH_LABEL, HEALTH_TONE } from "../format";

/** A coloured dot plus the health in words (colour is never the only signal). */
export function healthBadge(health: Health, testid: string) {
  return html`<span class="badge tone-${HEALTH_TONE[health]}" data-testid=${testid} data-health=${health}>
    <span class="dot" aria-hidden="true"></span><span class="badge-text">${HEALTH_LABEL[health]}</span>
  </span>`;
}
