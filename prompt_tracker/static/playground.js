// Prompt Tracker playground: send without reloading, stream replies live, Stop and Retry in place.
// Hand-written and small. Without it the page still works: forms post and the page refreshes itself.
(() => {
  "use strict";
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  if (!list || !composer) return;
  const textarea = composer.querySelector("textarea");
  const errorBox = document.getElementById("composer-error");
  const OPEN = ["pending", "streaming"];
  let socketReady = false;

  const csrfToken = () => composer.querySelector('input[name="csrf_token"]').value;
  const item = (id) => document.getElementById("m-" + id);
  const scrollToEnd = () => { list.scrollTop = list.scrollHeight; };

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function countMessages(added) {
    const counter = document.getElementById("message-count");
    const count = Number(counter.dataset.count) + added;
    counter.dataset.count = count;
    counter.textContent = `${count} message${count === 1 ? "" : "s"}`;
  }

  function replaceWithHtml(element, html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    element.replaceWith(...template.content.childNodes);
  }

  async function refreshMessage(id) {
    const response = await fetch(`${list.dataset.messagesUrl}/${encodeURIComponent(id)}`, {
      headers: { Accept: "text/html" }, credentials: "same-origin",
    });
    const element = item(id);
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (response.ok && element) replaceWithHtml(element, await response.text());
    if (atEnd) scrollToEnd();
    else if (response.status === 404 && element) element.remove();
  }

  function refreshOpenMessages() {
    list.querySelectorAll(".message-assistant").forEach((element) => {
      if (OPEN.includes(element.dataset.status)) refreshMessage(element.dataset.id);
    });
  }

  async function post(url, body) {
    return fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    });
  }

  async function errorText(response) {
    try { return (await response.json()).error; } catch { return `The server answered ${response.status}.`; }
  }

  // Send: the text stays in the box until the server has stored it.
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = composer.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const response = await post(composer.action, new FormData(composer));
      if (response.status === 202) {
        const data = await response.json();
        list.querySelector(".empty")?.remove();
        list.insertAdjacentHTML("beforeend", data.html);
        countMessages(2);
        textarea.value = "";
        showError("");
        scrollToEnd();
      } else {
        showError(await errorText(response));
      }
    } catch {
      showError("Could not reach the server; your message is still in the box.");
    } finally {
      button.disabled = false;
      textarea.focus();
    }
  });

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  // Stop and Retry, in place.
  list.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches(".stop-form, .retry-form")) return;
    event.preventDefault();
    const id = form.closest(".message").dataset.id;
    try {
      const response = await post(form.action, new FormData(form));
      if (!response.ok) return showError(await errorText(response));
      const data = await response.json();
      if (data.html) replaceWithHtml(item(id), data.html);
      else if (data.status !== "streaming") refreshMessage(id);
    } catch {
      showError("Could not reach the server.");
    }
  });

  // Live events of this session's replies.
  const handlers = {
    "message.started": ({ id }) => {
      const element = item(id);
      if (!element) return;
      element.dataset.status = "streaming";
      element.classList.replace("status-pending", "status-streaming");
      const typing = element.querySelector(".typing");
      if (typing) typing.textContent = "writing…";
    },
    "message.delta": ({ id, text }) => {
      const live = item(id)?.querySelector(".live");
      if (!live) return;
      const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      live.textContent += text;
      if (atEnd) scrollToEnd();
    },
    "message.done": ({ id }) => refreshMessage(id),
    "message.failed": ({ id }) => refreshMessage(id),
    "message.stopped": ({ id }) => refreshMessage(id),
  };

  // A minimal Socket.IO client (Engine.IO 4 over one WebSocket): connect, answer pings, take events.
  function connectSocket(delay = 1000) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/socket.io/?EIO=4&transport=websocket`);
    let refused = false;
    socket.onmessage = ({ data }) => {
      if (data === "2") socket.send("3");                       // ping → pong
      else if (data[0] === "0") socket.send("40");              // transport open → join namespace "/"
      else if (data.startsWith("40")) { socketReady = true; delay = 1000; refreshOpenMessages(); }
      else if (data.startsWith("44")) { refused = true; }       // no session yet: polling covers it
      else if (data.startsWith("42")) {
        const [name, payload] = JSON.parse(data.slice(2));
        handlers[name]?.(payload);
      }
    };
    socket.onclose = () => {
      socketReady = false;
      if (!refused) setTimeout(() => connectSocket(Math.min(delay * 2, 15000)), delay);
    };
  }

  // If the socket is down, look at open replies every few seconds instead.
  setInterval(() => { if (!socketReady) refreshOpenMessages(); }, 3000);

  // Switching provider offers that provider's models (the model field stays free text).
  const provider = document.getElementById("provider");
  const model = document.getElementById("model");
  provider?.addEventListener("change", () => {
    const options = [...document.querySelectorAll(`#model-suggestions option[data-provider="${provider.value}"]`)];
    if (options.length && !options.some((option) => option.value === model.value)) model.value = options[0].value;
  });

  // On a phone the settings fold away above the conversation.
  if (window.matchMedia("(max-width: 760px)").matches) document.querySelector(".settings-fold")?.removeAttribute("open");

  scrollToEnd();
  connectSocket();
})();
