// Prompt Tracker, Compare and Replay pages: replies stream live in their columns; when a reply ends or
// a turn is added, the rows are fetched again from the server (events are hints, the rows the record).
// Without JavaScript the pages work too: forms post and redirect, and an open reply refreshes the page.
(() => {
  "use strict";
  const box = document.getElementById("workbench");
  if (!box) return;
  const playgrounds = box.dataset.playgrounds.split(",");
  const errorBox = document.getElementById("workbench-error");
  const composer = document.getElementById("composer");
  const OPEN = ["pending", "streaming"];
  const item = (id) => document.getElementById("m-" + id);

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  // The rows fetched, in place of those shown; a message the page has seen in a newer state than the
  // fetched one (an event overtook the fetch) stays as shown (live.js's ``admit``).
  function show(html) {
    const rows = document.createElement("template");
    rows.innerHTML = html;
    for (const element of rows.content.querySelectorAll(".message")) {
      const current = item(element.dataset.id);
      if (!window.PromptTrackerLive.admit(element, current, () => refresh())) element.replaceWith(current);
    }
    box.replaceChildren(rows.content);
  }

  // One fetch of the rows at a time; an event during it asks for one more afterwards.
  let refreshing = null;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      try {
        do {
          again = false;
          const response = await window.PromptTrackerFetch(box.dataset.rowsUrl, { headers: { Accept: "text/html" }, credentials: "same-origin" });
          if (response.ok) show(await response.text());
        } while (again);
      } catch {
        // offline: the next reconnect or event tries again
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  async function post(url, body) {
    return window.PromptTrackerFetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": box.dataset.csrf },
    });
  }

  async function errorText(response) {
    try { return (await response.json()).error; } catch { return `The server answered ${response.status}.`; }
  }

  // Stop, Retry and the replay's own buttons, in place.
  box.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches(".stop-form, .retry-form, .choose-form, .workbench-action")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    const body = new FormData(form, event.submitter);  // ‹ and › carry the attempt they show
    if (button) button.disabled = true;
    try {
      const response = await post(form.action, body);
      showError(response.ok ? "" : await errorText(response));
    } catch {
      showError("Could not reach the server.");
    }
    refresh();
  });

  // The Compare page's composer: the message goes to both models (the server's send does that).
  if (composer) {
    const textarea = composer.querySelector("textarea");
    let sending = false;
    let sendAgain = false;
    composer.addEventListener("submit", async (event) => {
      event.preventDefault();
      // As on the playground: a Send while the last is on its way goes once that one is answered.
      if (sending) return void (sendAgain = true);
      sending = true;
      const body = new FormData(composer);
      const sent = body.get("content");
      try {
        const response = await post(composer.action, body);
        composer.querySelector('input[name="confirm_overflow"]')?.remove();
        if (response.ok) {
          if (textarea.value === sent) {  // not what was typed since (the turn may show before this answer)
            textarea.value = "";
            textarea.dispatchEvent(new Event("input"));  // drafts.js forgets the sent text
          }
          showError("");
          const bytes = crypto.getRandomValues(new Uint8Array(16));
          composer.querySelector('input[name="client_token"]').value =
            btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
          // As the playground does after a send: the newest turn (the message just sent) comes into view.
          await refresh();
          const turns = box.querySelectorAll(".turn");
          turns[turns.length - 1]?.scrollIntoView({ block: "start" });
        } else {
          const answer = await response.json().catch(() => ({}));
          showError(answer.error || `The server answered ${response.status}.`);
          // It may not fit the context window: as on the playground, the next Send of this text goes ahead.
          if (answer.overflow) {
            composer.append(Object.assign(document.createElement("input"), { type: "hidden", name: "confirm_overflow", value: "1" }));
          }
        }
      } catch {
        showError("Could not reach the server; your message is still in the box.");
      } finally {
        sending = false;
        textarea.focus();
        if (sendAgain) {
          sendAgain = false;
          if (textarea.value.trim() && textarea.value !== sent) composer.requestSubmit();
        }
      }
    });
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
  }

  // Live events (payloads: prompt_tracker/replies/live.py): a reply's own are live.js's, as on the playground,
  // but a gap in its text, or its end, fetches the rows.
  const ours = (payload) => playgrounds.includes(payload.playground);
  const handlers = {
    ...window.PromptTrackerLive.replyHandlers({
      refreshMessage: () => refresh(),
      concerns: (payload) => ours(payload) || item(payload.id),
    }),
    "message.appended": (payload) => ours(payload) && refresh(),
    "conversation.reset": (payload) => ours(payload) && refresh(),
    // A replay's reply was compared with the original's (by the worker, after its end): show the difference.
    "message.compared": (payload) => ours(payload) && refresh(),
    // A replay's next turn waits for the send rate: the state line says when it starts.
    "replay.paced": (payload) => ours(payload) && refresh(),
  };

  window.PromptTrackerLive.connect({
    handlers,
    catchUp: refresh,
    hasOpenReply: () => [...box.querySelectorAll(".message")].some((element) => OPEN.includes(element.dataset.status)),
  });

  // Switching provider offers that provider's models (the model field stays free text).
  const provider = document.getElementById("choice-provider");
  const model = document.getElementById("choice-model");
  provider?.addEventListener("change", () => {
    const options = [...document.querySelectorAll(`#choice-models option[data-provider="${provider.value}"]`)];
    if (options.length && !options.some((option) => option.value === model.value)) model.value = options[0].value;
  });
})();
