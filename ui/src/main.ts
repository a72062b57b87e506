// Entry point: draw the window from the state, then keep the state live.
import "./styles.css";
import { render } from "lit-html";
import { startIntents } from "./intents";
import { installShortcuts } from "./keys";
import { startPolling } from "./poll";
import { changed, setDraw } from "./state";
import { app } from "./views/app";
import { keepLogPinned } from "./views/log";

const root = document.getElementById("app");
if (!root) throw new Error("index.html lacks #app");

setDraw(() => keepLogPinned(() => render(app(), root)));
changed(); // "Loading…" until the first snapshot arrives
startPolling();
installShortcuts();
void startIntents();
