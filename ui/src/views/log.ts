// The activity log: a bar showing the latest line, which opens into the whole log.
import { html, nothing } from "lit-html";
import type { LogEntry } from "../bindings/LogEntry";
import { clockTime } from "../format";
import { changed, state, toast } from "../state";
import { prose } from "./prose";

export function logPanel() {
  const log = state.snapshot?.log ?? [];
  const last = log[log.length - 1];
  const open = state.logOpen;
  return html`<section class="log-panel ${open ? "open" : ""}" aria-label="Activity">
    <button
      type="button"
      class="log-bar"
      data-testid="log-toggle"
      aria-expanded=${open ? "true" : "false"}
      aria-controls="log-list"
      @click=${() => {
        state.logOpen = !state.logOpen;
        changed();
      }}
    >
      <span class="chevron" aria-hidden="true"></span>
      <span class="log-title">Activity</span>
      ${!open && last ? html`<span class="log-last level-${last.level}">${prose(last.message)}</span>` : nothing}
    </button>
    ${open ? openLog(log) : nothing}
  </section>`;
}

/** The open log: a filter (text, sandbox or level) and a copy of what it shows. */
function openLog(log: LogEntry[]) {
  const needle = state.logFilter.trim().toLowerCase();
  const shown = needle ? log.filter((e) => asText(e).toLowerCase().includes(needle)) : log;
  return html`<div class="log-tools">
      <input
        type="search"
        placeholder="Filter activity"
        aria-label="Filter activity"
        data-testid="log-filter"
        .value=${state.logFilter}
        @input=${(e: Event) => {
          state.logFilter = (e.target as HTMLInputElement).value;
          changed();
        }}
      />
      <button type="button" class="btn small" data-testid="log-copy" ?disabled=${!shown.length} @click=${() => copy(shown)}>
        Copy
      </button>
    </div>
    <ol id="log-list" class="log" data-testid="log" tabindex="0" aria-label="Activity log">
      ${shown.length ? shown.map(line) : html`<li class="muted">${needle ? "No line matches." : "Nothing yet."}</li>`}
    </ol>`;
}

/** One line as plain text, as copied: `12:01:02 info demo Forwarding …`. */
function asText(e: LogEntry): string {
  return `${clockTime(e.at)} ${e.level} ${e.sandbox ?? "app"} ${e.message}`;
}

async function copy(lines: LogEntry[]) {
  const text = lines.map(asText).join("\n") + "\n";
  try {
    await navigator.clipboard.writeText(text);
    toast(`Copied ${lines.length === 1 ? "1 line" : `${lines.length} lines`} of activity`);
  } catch (e) {
    toast(`Cannot copy: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function line(entry: LogEntry) {
  return html`<li class="log-entry level-${entry.level}" data-testid="log-entry">
    <time class="mono">${clockTime(entry.at)}</time>
    <span class="log-level">${entry.level}</span>
    <span class="log-sandbox">${entry.sandbox ?? "app"}</span>
    <span class="log-message">${prose(entry.message)}</span>
  </li>`;
}

/** Newest lines are at the bottom: keep the view there unless the user scrolled up to read. */
export function keepLogPinned(draw: () => void): void {
  const before = document.getElementById("log-list");
  const pinned = !before || before.scrollHeight - before.scrollTop - before.clientHeight < 24;
  draw();
  const after = document.getElementById("log-list");
  if (after && pinned) after.scrollTop = after.scrollHeight;
}
