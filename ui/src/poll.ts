// Live status: ask for the snapshot every second. The next poll is scheduled only after the
// previous one answered, so a slow core never piles up requests; while the window is hidden in
// the tray nothing is shown, so nothing is asked.
import { call, errorMessage } from "./ipc";
import { applySnapshot, changed, state } from "./state";

const INTERVAL_MS = 1000;

export function startPolling(): void {
  const tick = async () => {
    if (document.hidden) {
      setTimeout(tick, INTERVAL_MS);
      return;
    }
    try {
      const reply = await call({ kind: "snapshot" });
      if (state.lostContact !== null) {
        state.lostContact = null;
        changed();
      }
      applySnapshot(reply.snapshot);
    } catch (error) {
      const message = errorMessage(error);
      if (state.lostContact !== message) {
        state.lostContact = message;
        changed();
      }
    } finally {
      setTimeout(tick, INTERVAL_MS);
    }
  };
  void tick();
}
