// Prompt Tracker playground: send without reloading, stream replies live, keep every tab of the session in step.
// The Socket.IO connection is live.js's (the official client, static/vendor/socket.io.min.js); this file only wires
// its events to the page. Without JavaScript the page still works: forms post, and an open reply shows in a frame that refreshes itself.
(() => {
  "use strict";
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  if (!list || !composer) return;
  const textarea = composer.querySelector("textarea");
  const errorBox = document.getElementById("composer-error");
  const settingsForm = document.getElementById("settings-form");
  const playground = list.dataset.playground;
  const OPEN = ["pending", "streaming"];
  let sending = false;
  let sendAgain = false;  // a Send pressed while the last one was on its way
  let savingSettings = false;

  document.documentElement.classList.add("can-confirm");  // Delete asks with a second click, not a check box
  const csrfToken = () => composer.querySelector('input[name="csrf_token"]').value;
  const item = (id) => document.getElementById("m-" + id);
  const messageItems = () => [...list.querySelectorAll(".message")];
  const nearEnd = () => list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const scrollToEnd = () => { list.scrollTop = list.scrollHeight; };

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function showCount(count) {
    const counter = document.getElementById("message-count");
    counter.dataset.count = count;
    counter.textContent = `${count} message${count === 1 ? "" : "s"}`;
    document.querySelectorAll(".message-count-text").forEach((text) => { text.textContent = counter.textContent; });
  }

  function elementsOf(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return [...template.content.children];
  }

  // Put messages in place: replace the element of the same id, or add it at the end; returns how many were added.
  // HTML older than what the page has seen of a message (live.js's ``admit``: a send's answer or a
  // catch-up that a reply's start or end overtook) never replaces a newer state.
  function upsert(html) {
    let added = 0;
    for (const element of elementsOf(html)) {
      const current = item(element.dataset.id);
      if (!window.PromptTrackerLive.admit(element, current, refreshMessage)) continue;
      if (current) {
        const focused = current.contains(document.activeElement) && document.activeElement;
        current.replaceWith(element);
        if (focused) keepFocus(focused, element);
      }
      else {
        list.querySelector(".empty")?.remove();
        list.append(element);
        added += 1;
      }
    }
    return added;
  }

  // A message swapped for its new HTML keeps the keyboard's place: the same control in the new copy.
  function keepFocus(focused, element) {
    const selector = [...focused.classList].map((name) => "." + CSS.escape(name)).join("");
    const control = selector && element.querySelector(`${focused.tagName}${selector}`);
    if (control && !control.disabled) control.focus();
  }

  const refreshing = new Map();  // id → whether another fetch is due when the current one ends
  async function refreshMessage(id) {
    if (refreshing.has(id)) return void refreshing.set(id, true);  // one fetch per message at a time
    refreshing.set(id, false);
    try {
      const response = await window.PromptTrackerFetch(`${list.dataset.messagesUrl}/${encodeURIComponent(id)}`, {
        headers: { Accept: "text/html" }, credentials: "same-origin",
      });
      const atEnd = nearEnd();
      if (response.ok && item(id)) upsert(await response.text());
      else if (response.status === 404) item(id)?.remove();
      if (atEnd) scrollToEnd();
    } catch {
      // offline: the next reconnect catches up
    } finally {
      const again = refreshing.get(id);
      refreshing.delete(id);
      if (again) refreshMessage(id);
    }
  }

  // Catch up with the server: after every (re)connect and on events this tab may have half seen.
  // Events are hints; this is the record (what a reload would show, without reloading).
  let catchingUp = null;
  let catchUpAgain = false;
  async function catchUp() {
    if (list.hasAttribute("data-earlier")) return;  // an earlier window of the conversation stays as it is
    if (catchingUp) { catchUpAgain = true; return catchingUp; }
    catchingUp = (async () => {
      try {
        do {
          catchUpAgain = false;
          await catchUpOnce();
        } while (catchUpAgain);
      } catch {
        // offline: the next reconnect or event tries again
      } finally {
        catchingUp = null;
      }
    })();
    return catchingUp;
  }

  async function catchUpOnce() {
    const shown = messageItems();
    const query = new URLSearchParams({
      after: shown.length ? shown[shown.length - 1].dataset.id : "",
      open: shown.filter((element) => OPEN.includes(element.dataset.status)).map((element) => element.dataset.id).join(","),
    });
    const response = await window.PromptTrackerFetch(`${list.dataset.openUrl}?${query}`, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    if (!response.ok) return;
    const state = await response.json();
    const atEnd = nearEnd();
    if (state.replace) {
      list.replaceChildren();
      if (state.start > 0) {
        const earlier = document.createElement("li");
        earlier.className = "earlier";
        earlier.innerHTML = `<a href="?before=${state.start}">Show earlier messages (${state.start} more)</a>`;
        list.append(earlier);
      }
      if (!state.messages.length) {
        const empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = "No messages yet. Write one below.";
        list.append(empty);
      }
    }
    state.messages.forEach((message) => upsert(message.html));
    showCount(state.total);
    noticeSettings(state.settings_digest);
    if (atEnd || state.replace) scrollToEnd();
  }

  // A settings form loaded before another tab saved says so, instead of silently undoing that save.
  function noticeSettings(digest) {
    const notice = document.getElementById("settings-stale");
    if (!settingsForm || savingSettings || notice.hasAttribute("data-conflict")) return;  // a refused save says so itself
    notice.hidden = digest === settingsForm.dataset.digest;
  }
  settingsForm?.addEventListener("submit", () => { savingSettings = true; });

  async function post(url, body) {
    return window.PromptTrackerFetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    });
  }

  async function errorText(response) {
    try { return (await response.json()).error; } catch { return `The server answered ${response.status}.`; }
  }

  // The composer's submission token (if the page has one): the server stores one message per token,
  // so the page takes a new one for each message it sends without reloading.
  function renewClientToken() {
    const field = composer.querySelector('input[name="client_token"]');
    if (!field) return;
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    field.value = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The context-window warning's second Send: a hidden field the server reads as "send it anyway".
  function confirmOverflow(on) {
    let field = composer.querySelector('input[name="confirm_overflow"]');
    if (on && !field) {
      field = Object.assign(document.createElement("input"), { type: "hidden", name: "confirm_overflow", value: "1" });
      composer.append(field);
    } else if (!on) field?.remove();
  }

  // Send: once per message (a second Ctrl+Enter while the first is on its way does nothing); the text
  // stays in the box until the server has stored it.
  // Sending while the settings form has unsaved changes: say that the saved settings would be used,
  // once; the next Send goes ahead.
  let warnedUnsaved = false;
  function unsavedSettingsHold() {
    if (!settingsForm?.dataset.dirty || warnedUnsaved) return false;
    warnedUnsaved = true;
    showError("Your settings have unsaved changes: this message would use the saved settings. " +
      "Save them first, or press Send again to send with the saved ones.");
    return true;
  }

  // Sent: empty the box, and its kept draft with it (drafts.js listens to "input"), unless what it holds
  // is no longer the text sent: the message can show (its live event) before the send's answer comes,
  // and what was typed since is the next message, not this one's leftover.
  function clearComposer(sent) {
    if (textarea.value !== sent) return;
    textarea.value = "";
    textarea.dispatchEvent(new Event("input"));
  }

  // A Send held because another tab saved settings since this page loaded (409): the sentence and its
  // two choices (load them: the page again, the typed text kept by drafts.js; or send with them anyway).
  const settingsChanged = document.getElementById("settings-changed");
  function showSettingsChanged(text) {
    if (!settingsChanged) return;
    settingsChanged.querySelector(".settings-changed-text").textContent = text || "";
    settingsChanged.hidden = !text;
  }

  composer.addEventListener("submit", async (event) => {
    // "Save values" of the variables panel posts the composer's fields to its own address: a page load.
    if (event.submitter?.hasAttribute("formaction")) return;
    event.preventDefault();
    const confirmingSettings = event.submitter?.name === "confirm_settings";
    // A Send while the last one is on its way goes once that one is answered (it takes the next
    // submission token then): never lost, never the same message twice.
    if (sending) return void (sendAgain = true);
    if (!confirmingSettings && unsavedSettingsHold()) return;
    sending = true;
    const button = composer.querySelector('button[type="submit"]');
    button.disabled = true;
    const body = new FormData(composer);  // with the variables panel's fields (form="composer")
    const sent = body.get("content");
    if (confirmingSettings) body.set("confirm_settings", "1");
    try {
      const response = await post(composer.action, body);
      if (response.ok) confirmOverflow(false);
      if (response.ok) showSettingsChanged("");
      if (response.status === 202) {
        const data = await response.json();
        showCount(Number(document.getElementById("message-count").dataset.count) + upsert(data.html));
        clearComposer(sent);
        showError("");
        renewClientToken();
        scrollToEnd();
      } else if (response.ok) {  // this submission was stored already (sent twice): show what is stored
        clearComposer(sent);
        showError("");
        renewClientToken();
        catchUp();
      } else {
        const answer = await response.json().catch(() => ({}));
        showError("");
        if (answer.settings_changed) showSettingsChanged(answer.error);
        else showError(answer.error || `The server answered ${response.status}.`);
        // It may not fit the context window: the next Send of this text goes ahead.
        if (answer.overflow) confirmOverflow(true);
      }
    } catch {
      showError("Could not reach the server; your message is still in the box.");
    } finally {
      sending = false;
      button.disabled = false;
      textarea.focus();
      if (sendAgain) {
        sendAgain = false;
        // Only new text: a refused send keeps its text in the box, to be sent again by hand.
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

  // Retry and Resend carry the version of the settings this page shows, as Send does (the composer's:
  // a message's own HTML may have come from an event, rendered after another tab's save). Held once
  // (409), the same button again goes ahead with the saved settings.
  function withShownSettings(form, body) {
    const shown = composer?.querySelector('input[name="settings_version"]')?.value;
    if (shown) body.set("settings_version", shown);
    if (form.dataset.confirmSettings) body.set("confirm_settings", "1");
    return body;
  }
  function heldForSettings(form, sentence, button) {
    form.dataset.confirmSettings = "1";
    return `${sentence} Press ${button} again to use the saved settings, or reload the page to see them.`;
  }
  async function refusalText(form, response, button) {
    const answer = await response.clone().json().catch(() => ({}));
    return answer.settings_changed ? heldForSettings(form, answer.error, button) : errorText(response);
  }

  // Stop and Retry, in place.
  list.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches(".stop-form, .retry-form")) return;
    event.preventDefault();
    const id = form.closest(".message").dataset.id;
    const body = form.matches(".retry-form") ? withShownSettings(form, new FormData(form)) : new FormData(form);
    try {
      const response = await post(form.action, body);
      if (!response.ok) return showError(await refusalText(form, response, "Retry"));
      const data = await response.json();
      if (data.html) upsert(data.html);
      else if (data.status !== "streaming") refreshMessage(id);
    } catch {
      showError("Could not reach the server.");
    }
  });

  // A tool call's result, in place: the reply loses that call's form, the result (and the next reply, once
  // every call is answered) follow it. The button stays disabled while it is sent (a double click posts once).
  list.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches(".tool-result-form")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    if (button.disabled) return;
    button.disabled = true;
    try {
      const response = await post(form.action, new FormData(form));
      if (!response.ok) {
        showError(await errorText(response));
        return refreshMessage(form.closest(".message").dataset.id);
      }
      showError("");
      // The results shown after the reply go, and come back with the new one in the calls' order.
      let removed = 0;
      for (let next = form.closest(".message").nextElementSibling; next?.classList.contains("message-tool");) {
        const gone = next;
        next = next.nextElementSibling;
        gone.remove();
        removed += 1;
      }
      const added = upsert((await response.json()).html) - removed;
      showCount(Number(document.getElementById("message-count").dataset.count) + added);
      scrollToEnd();
    } catch {
      showError("Could not reach the server.");
    } finally {
      button.disabled = false;
    }
  });

  // ‹ 2/3 ›: show another attempt of a reply in place; focus stays on the arrow pressed (or the other one at an end).
  list.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches(".choose-form")) return;
    event.preventDefault();
    const id = form.closest(".message").dataset.id;
    const pressed = event.submitter?.classList.contains("choose-previous") ? "choose-previous" : "choose-next";
    const body = new FormData(form, event.submitter);
    form.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    try {
      const response = await post(form.action, body);
      if (!response.ok) {
        showError(await errorText(response));
        return refreshMessage(id);
      }
      showError("");
      upsert((await response.json()).html);
      const arrows = item(id)?.querySelector(".choose-form");
      const focus = arrows?.querySelector(`.${pressed}:not([disabled])`) || arrows?.querySelector("button:not([disabled])");
      focus?.focus();
    } catch {
      showError("Could not reach the server.");
      refreshMessage(id);
    }
  });

  // Delete asks once: the first click says what goes ("Delete this and the reply after it?"), the second
  // deletes. (Without JS the form's "confirm" box must be ticked.) A click anywhere else takes it back.
  function disarmDeletes(except = null) {
    list.querySelectorAll(".delete-form[data-armed]").forEach((form) => {
      if (form === except) return;
      delete form.dataset.armed;
      const button = form.querySelector('button[type="submit"]');
      button.textContent = "Delete";
      button.classList.remove("delete-armed");
    });
  }

  list.addEventListener("click", async (event) => {
    const button = event.target.closest('.delete-form button[type="submit"]');
    disarmDeletes(button?.form);
    if (!button) return;
    event.preventDefault();
    const form = button.form;
    const element = form.closest(".message");
    if (!form.dataset.armed) {
      form.dataset.armed = "1";
      const reply = element.classList.contains("message-user") && element.nextElementSibling?.matches(".message-assistant");
      button.textContent = reply ? "Delete this and the reply after it?" : "Delete this message?";
      button.classList.add("delete-armed");
      return;
    }
    if (form.dataset.posting) return;  // a double click deletes once
    form.dataset.posting = "1";
    const body = new FormData(form);
    body.set("confirm", "yes");
    try {
      const response = await post(form.action, body);
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        showError(answer.error || `The server answered ${response.status}.`);
        disarmDeletes();
        return catchUp();
      }
      showError("");
      (answer.deleted || []).forEach((id) => item(id)?.remove());
      showCount(answer.total);
      catchUp();
    } catch {
      showError("Could not reach the server.");
    } finally {
      delete form.dataset.posting;
    }
  });
  document.addEventListener("click", (event) => {
    if (!list.contains(event.target)) disarmDeletes();
  });

  // Edit and resend, in place (without JS, Edit opens the page with the form and a checkbox confirms):
  // Edit swaps the message for its form, Cancel puts the message back, and the first Resend says what
  // goes; the second sends. The tab then shows the conversation as it now is.
  const beforeEdit = new Map();  // message id → the message element its edit form replaced
  list.addEventListener("click", async (event) => {
    const link = event.target.closest(".edit-link, .edit-cancel");
    if (!link) return;
    const element = link.closest(".message");
    if (link.matches(".edit-cancel")) {
      if (!beforeEdit.has(element.dataset.id)) return;  // the no-JS form page: the link goes back
      event.preventDefault();
      element.replaceWith(beforeEdit.get(element.dataset.id));
      beforeEdit.delete(element.dataset.id);
      return;
    }
    event.preventDefault();
    try {
      const response = await window.PromptTrackerFetch(link.href.split("#")[0], {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) return showError(await errorText(response));
      const [editor] = elementsOf((await response.json()).html);
      beforeEdit.set(element.dataset.id, element);
      element.replaceWith(editor);
      editor.querySelector(".edit-form").noValidate = true;  // the second click confirms, not the checkbox
      editor.querySelector(".confirm-remove")?.setAttribute("hidden", "");
      const box = editor.querySelector("textarea");
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    } catch {
      showError("Could not reach the server.");
    }
  });

  function armEdit(form, removes) {
    const button = form.querySelector('button[type="submit"]');
    form.dataset.armed = "1";
    button.textContent = `Remove ${removes} later message${removes === 1 ? "" : "s"} and resend`;
    button.classList.replace("button-primary", "button-danger");
  }

  list.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches(".edit-form")) return;
    event.preventDefault();
    const removes = Number(form.elements.removes.value);
    const errorLine = form.querySelector(".edit-error");
    const button = form.querySelector('button[type="submit"]');
    if (removes > 0 && !form.dataset.armed) return armEdit(form, removes);
    if (form.dataset.posting) return;  // a double click resends once
    form.dataset.posting = "1";
    button.disabled = true;
    const body = withShownSettings(form, new FormData(form));
    if (form.dataset.armed) body.set("confirm_remove", "yes");
    try {
      const response = await post(form.action, body);
      if (response.ok) {
        beforeEdit.delete(form.closest(".message").dataset.id);
        const data = await response.clone().json().catch(() => ({}));
        if (data.in_place) return void upsert(data.html);  // a system or assistant message: changed where it is
        if (list.hasAttribute("data-earlier")) return void (location.href = list.dataset.latestUrl);
        await catchUp();  // every message from the edited one on is new: the latest window replaces the list
        scrollToEnd();
        textarea.focus();
        return;
      }
      const answer = await response.json().catch(() => ({}));
      if (answer.settings_changed) answer.error = heldForSettings(form, answer.error, "Resend");
      errorLine.textContent = answer.error || `The server answered ${response.status}.`;
      errorLine.hidden = false;
      if (answer.removes) {  // more messages follow it than the form said: say so, and ask again
        form.elements.removes.value = answer.removes;
        const warning = form.querySelector(".edit-warning");
        if (warning) warning.textContent = answer.error;
        armEdit(form, answer.removes);
      }
    } catch {
      errorLine.textContent = "Could not reach the server; your text is still in the box.";
      errorLine.hidden = false;
    } finally {
      delete form.dataset.posting;
      button.disabled = false;
    }
  });

  // Live events of this session (payloads: prompt_tracker/replies/live.py); a reply's own are live.js's.
  const ours = (payload) => payload.playground === playground;
  const handlers = {
    ...window.PromptTrackerLive.replyHandlers({
      refreshMessage,
      // A worker may start before this tab heard of the message; a reply of Compare or Replay is theirs.
      unseenStart: (payload) => ours(payload) && catchUp(),
      scroller: { nearEnd, scrollToEnd },
    }),
    "message.appended": (payload) => {
      const ids = payload.ids || [payload.user_message_id, payload.message_id].filter(Boolean);
      if (ours(payload) && !(ids.length && ids.every(item))) catchUp();
    },
    "conversation.reset": (payload) => {
      if (!ours(payload)) return;
      // A delete: its messages go here too, and the count with them (this may come before the deleting
      // tab's own answer, which then sets the server's total).
      const gone = (payload.deleted || []).map(item).filter(Boolean);
      gone.forEach((element) => element.remove());
      if (gone.length) showCount(Number(document.getElementById("message-count").dataset.count) - gone.length);
      catchUp();
    },
    // An attempt chosen or a message edited in place in another tab (not one this tab shows already, nor
    // a message it is editing).
    "message.changed": (payload) => {
      const element = ours(payload) && item(payload.id);
      if (!element || element.querySelector(".edit-form")) return;
      if (payload.attempt !== undefined && element.dataset.attempt === String(payload.attempt)) return;
      refreshMessage(payload.id);
    },
    "settings.saved": (payload) => ours(payload) && noticeSettings(payload.digest),
  };

  window.PromptTrackerLive.connect({
    handlers,
    catchUp,
    hasOpenReply: () => messageItems().some((element) => OPEN.includes(element.dataset.status)),
  });

  // Switching provider offers that provider's models (the model field stays free text).
  const provider = document.getElementById("provider");
  const model = document.getElementById("model");
  provider?.addEventListener("change", () => {
    const options = [...document.querySelectorAll(`#model-suggestions option[data-provider="${provider.value}"]`)];
    if (options.length && !options.some((option) => option.value === model.value)) model.value = options[0].value;
  });

  // The skip link puts the cursor in the message box (past every message's buttons).
  document.querySelector('.skip-link[href="#composer"]')?.addEventListener("click", (event) => {
    event.preventDefault();
    composer.scrollIntoView({ block: "end" });
    textarea.focus();
  });

  // On a phone the settings fold away above the conversation.
  // (Not when the form came back refused: its errors must show.)
  const refused = settingsForm?.querySelector(".field-error, #settings-stale[data-conflict]");
  if (window.matchMedia("(max-width: 760px)").matches && !refused) document.querySelector(".settings-fold")?.removeAttribute("open");

  scrollToEnd();
})();
