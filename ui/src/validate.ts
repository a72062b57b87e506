// Client-side checks mirroring the core's rules, so most mistakes are caught before a request.
// The core validates again; its ActionError is shown when these pass but it refuses.

/** Same rule as the core's `SandboxName`: it becomes an ssh host name and file names. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;

export function checkName(name: string, taken: readonly string[]): string | null {
  if (!name) return "Enter a name; it becomes the ssh host name (ssh NAME).";
  if (!NAME.test(name)) return "Use 1–64 letters, digits, “-” or “_”, not starting with “-”.";
  if (taken.includes(name)) return `A sandbox named ${name} already exists; pick another name.`;
  return null;
}

/** Same rules as the core's `ServerUrl::parse`: https:// is assumed when no scheme is given. */
export function checkServer(server: string): string | null {
  if (!server) return "Enter the server's address, e.g. https://sandboxes.example.com.";
  if (/\s/.test(server)) return "The server address cannot contain spaces.";
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(server)?.[1].toLowerCase();
  if (scheme !== undefined && scheme !== "https" && scheme !== "http") {
    return `The server address must start with https:// (or http://), not ${scheme}://.`;
  }
  let url: URL;
  try {
    url = new URL(scheme === undefined ? `https://${server}` : server);
  } catch {
    return "That is not a server address; enter e.g. https://sandboxes.example.com.";
  }
  if (!url.hostname) return "The server address needs a host name, e.g. https://sandboxes.example.com.";
  if (url.username || url.password) return "Leave the user name and password out of the address; set sign-in below.";
  if (url.search || url.hash || server.includes("?") || server.includes("#")) {
    return "The server address cannot have a query (?…) or a fragment (#…).";
  }
  return null;
}

export function checkHttpUrl(value: string, what: string): string | null {
  if (!value) return `Enter the ${what}.`;
  try {
    const url = new URL(value);
    if (url.protocol === "https:" || url.protocol === "http:") return null;
  } catch {
    // fall through
  }
  return `The ${what} must be a full URL starting with https://.`;
}

export function checkRequired(value: string, what: string): string | null {
  return value ? null : `Enter the ${what}.`;
}

export function checkFolder(folder: string): string | null {
  if (!folder.startsWith("/")) return "Enter an absolute folder in the pod, e.g. /workspace.";
  return null;
}

/** Parses a whole port number within [min, 65535], or explains the range. */
export function parsePort(text: string, min: number): number | string {
  const trimmed = text.trim();
  const value = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (Number.isInteger(value) && value >= min && value <= 65535) return value;
  return min === 0 ? "Use 0 (any free port) or 1–65535." : `Use a port from ${min} to 65535.`;
}
