// The window's state: the core's latest snapshot plus what only this window knows (selection,
// open form, per-place feedback). Every change calls `changed()`, which schedules one redraw.
import type { ErrorCode } from "./bindings/ErrorCode";
import type { ListeningPortsView } from "./bindings/ListeningPortsView";
import type { Reply } from "./bindings/Reply";
import type { Request } from "./bindings/Request";
import type { SandboxView } from "./bindings/SandboxView";
import type { Snapshot } from "./bindings/Snapshot";
import type { ForwardDraft } from "./forwardDraft";
import { call, errorCode, errorMessage } from "./ipc";
import { recall, remember } from "./remember";
import type { SandboxForm } from "./sandboxForm";

export type View = { kind: "sandbox" } | { kind: "form"; form: SandboxForm } | { kind: "prefs" };

/** A result shown at the place the user acted: an error stays, a notice fades. */
export interface Feedback {
  tone: "error" | "notice";
  text: string;
}

const remembered = recall();

export const state = {
  snapshot: null as Snapshot | null,
  /** Kept across closing and reopening the window (`remember`), as is `openIn`. */
  selected: remembered.selected,
  view: { kind: "sandbox" } as View,
  /** The sandbox whose Remove is awaiting confirmation. */
  confirmingRemove: null as string | null,
  /** "Open in" choice made in this window; null follows the default IDE preference. */
  openIn: remembered.openIn,
  logOpen: false,
  /** The last port scan of each sandbox (the Ports card's "Detected in the pod"). */
  detected: new Map<string, ListeningPortsView>(),
  /** The open activity log's filter (text, sandbox or level). */
  logFilter: "",
  /** The sandbox list's filter: null while hidden (Ctrl/⌘+F shows it; Escape hides it). */
  filter: null as string | null,
  /** Why polling fails, while it does. */
  lostContact: null as string | null,
  /** Keyed by place (see `place`). */
  feedback: new Map<string, Feedback>(),
  /** Requests in flight, keyed by place: controls there are disabled and show the intent. */
  busy: new Map<string, Request>(),
  forwardDrafts: new Map<string, ForwardDraft>(),
  toasts: [] as { id: number; text: string }[],
};

/** Names of the places where a user acts, hence where its outcome is shown. */
export const place = {
  actions: (name: string, what: "connect" | "openIn" | "sign" | "remove") => `${what}:${name}`,
  forward: (name: string, remotePort: number) => `forward:${name}:${remotePort}`,
  addForward: (name: string) => `addForward:${name}`,
  detect: (name: string) => `detect:${name}`,
  autoForward: (name: string) => `autoForward:${name}`,
  /** A link the app was handed that cannot be used. */
  link: "link",
  refresh: "refresh",
  form: "form",
  prefs: "prefs",
} as const;

const NOTICE_MS = 5000;

// ---- redraw scheduling -------------------------------------------------------------------

let draw: () => void = () => {};
let scheduled = false;
const afterDraw: (() => void)[] = [];

export function setDraw(fn: () => void): void {
  draw = fn;
}

/** Coalesces any number of changes in one task into one redraw. */
export function changed(): void {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    draw();
    for (const fn of afterDraw.splice(0)) fn();
  });
}

/** Runs `fn` once the next redraw is in the DOM (e.g. to move focus). */
export function afterNextDraw(fn: () => void): void {
  afterDraw.push(fn);
  changed();
}

// ---- snapshots and actions -----------------------------------------------------------------

/** Takes a snapshot from a poll or a reply; redraws only when its generation moved. */
export function applySnapshot(snapshot: Snapshot): void {
  const current = state.snapshot;
  // Generations only grow: an older one is a poll that raced an action's reply.
  if (current && snapshot.generation < current.generation) return;
  state.snapshot = snapshot;
  const names = snapshot.sandboxes.map((s) => s.settings.name);
  if (state.selected === null || !names.includes(state.selected)) state.selected = names[0] ?? null;
  if (state.confirmingRemove !== null && !names.includes(state.confirmingRemove)) state.confirmingRemove = null;
  if (!current || snapshot.generation !== current.generation) changed();
}

/** Saves what the window should still show after it is closed and opened again. */
export function rememberChoices(): void {
  remember({ selected: state.selected, openIn: state.openIn });
}

export function selectedSandbox(): SandboxView | null {
  return state.snapshot?.sandboxes.find((s) => s.settings.name === state.selected) ?? null;
}

const noticeTimers = new Map<string, ReturnType<typeof setTimeout>>();

export function setFeedback(at: string, feedback: Feedback | null): void {
  clearTimeout(noticeTimers.get(at));
  noticeTimers.delete(at);
  if (feedback) state.feedback.set(at, feedback);
  else state.feedback.delete(at);
  if (feedback?.tone === "notice") {
    noticeTimers.set(at, setTimeout(() => setFeedback(at, null), NOTICE_MS));
  }
  changed();
}

let toastId = 0;

/** A notice for an action whose place is gone afterwards (a saved form, a removed row). */
export function toast(text: string): void {
  const id = ++toastId;
  state.toasts.push({ id, text });
  changed();
  setTimeout(() => {
    state.toasts = state.toasts.filter((t) => t.id !== id);
    changed();
  }, NOTICE_MS);
}

/**
 * Runs one action on behalf of the control at `at`: marks it busy, applies the reply's
 * snapshot, and shows the notice or the error there (or the notice as a toast when the place
 * will not exist afterwards). Resolves with the reply, or null when it failed.
 */
export async function act(
  at: string,
  request: Request,
  opts: { toast?: boolean; onError?: (code: ErrorCode, message: string) => boolean } = {},
): Promise<Reply | null> {
  setFeedback(at, null);
  state.busy.set(at, request);
  changed();
  try {
    const reply = await call(request);
    applySnapshot(reply.snapshot);
    if (reply.notice) {
      if (opts.toast) toast(reply.notice);
      else setFeedback(at, { tone: "notice", text: reply.notice });
    }
    return reply;
  } catch (error) {
    // The caller may show it elsewhere (e.g. beside the field it is about).
    if (!opts.onError?.(errorCode(error), errorMessage(error))) {
      setFeedback(at, { tone: "error", text: errorMessage(error) });
    }
    return null;
  } finally {
    state.busy.delete(at);
    changed();
  }
}

/** The request in flight at `at` if it is of `kind` (to show e.g. a toggle's intended state). */
export function pending<K extends Request["kind"]>(at: string, kind: K): Extract<Request, { kind: K }> | null {
  const request = state.busy.get(at);
  return request?.kind === kind ? (request as Extract<Request, { kind: K }>) : null;
}
