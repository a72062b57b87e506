// Messages from the core are shared with the CLI, which marks commands with backticks as a
// terminal reader expects (`ssh demo`). In the window those spans become <code> and the
// backticks go; a message with an unpaired backtick is shown as it is.
import { html, type TemplateResult } from "lit-html";

export function prose(text: string): TemplateResult {
  const parts = text.split("`");
  if (parts.length % 2 === 0) return html`${text}`;
  return html`${parts.map((part, i) => (i % 2 === 1 ? html`<code>${part}</code>` : part))}`;
}
