// What the window is asked to show by the app around it: a sandbox-forward://add?… link fills
// the Add form (every value shown; nothing is saved, connected or signed in until the user adds
// it), a link that cannot be used says why, and the tray's "Add sandbox…" opens the empty form.
import type { Intent } from "./bindings/Intent";
import { errorMessage, onIntent, takeIntents } from "./ipc";
import { place, setFeedback } from "./state";
import { openForm } from "./views/navigation";

/** Takes what waits now (the link the app was started with), then whatever arrives later. */
export async function startIntents(): Promise<void> {
  try {
    await onIntent(() => void receive());
  } catch (error) {
    console.warn(`links will be read only at start: ${errorMessage(error)}`);
  }
  await receive();
}

async function receive(): Promise<void> {
  let intents: Intent[];
  try {
    intents = await takeIntents();
  } catch (error) {
    setFeedback(place.link, { tone: "error", text: `Cannot read the link: ${errorMessage(error)}` });
    return;
  }
  for (const intent of intents) show(intent);
}

export function show(intent: Intent): void {
  switch (intent.kind) {
    case "addSandbox":
      setFeedback(place.link, null);
      openForm(intent.settings, { adding: true, link: intent.link });
      break;
    case "badLink":
      setFeedback(place.link, { tone: "error", text: intent.message });
      break;
  }
}
