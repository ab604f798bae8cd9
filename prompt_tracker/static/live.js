// The pages' Socket.IO connection (the official client, static/vendor/socket.io.min.js): WebSocket only
// (any web process can take it), with the client's own ping timeout and reconnection. After a refusal
// (no stored session yet) or a server-side disconnect the client does not retry by itself, so this does,
// with a growing delay. While the socket is down, ``catchUp`` runs every few seconds if a reply is open,
// and always once on (re)connect: a page never trusts that it saw every event.
(() => {
  "use strict";
  const item = (id) => document.getElementById("m-" + id);  // a message's element, if the page shows it

  // A reply's states in order, per attempt: pending < streaming < ended (done, stopped, failed). The
  // page keeps the newest it has seen of each message, from events, its own HTML and every fetch alike,
  // and never shows an older one again: a fetch answered after a newer event (a send's answer, a
  // catch-up begun before the worker started) would otherwise put "Waiting for a worker…" back.
  const RANKS = { pending: 0, streaming: 1 };
  const rankOf = (status) => RANKS[status] ?? 2;
  const compare = (a, b) => a[0] - b[0] || a[1] - b[1];
  const stateOf = (element) => [Number(element.dataset.attempt) || 0, rankOf(element.dataset.status)];
  // Older: an earlier attempt, or an earlier step of the same one. Two ended states are not ordered
  // (choosing an earlier attempt, ‹ 1/3 ›, ends on it again): the later answer wins.
  const older = (a, b) => !(a[1] === 2 && b[1] === 2) && compare(a, b) < 0;
  const seen = new Map();  // message id → [attempt, rank], the newest seen
  function note(id, state) {
    const known = seen.get(id);
    if (!known || compare(state, known) > 0) seen.set(id, state);
  }

  function markStreaming(element, attempt) {
    element.dataset.status = "streaming";
    if (attempt) element.dataset.attempt = attempt;
    element.classList.replace("status-pending", "status-streaming");
    const typing = element.querySelector(".typing");
    if (typing) typing.textContent = "writing…";
  }

  // A streaming reply's tool calls as they assemble (``message.tool_calls``: every call so far, each time):
  // "Calling <name>…" and the arguments so far, in the list its HTML has (_message.html's ``live_calls``).
  function showCalls(body, calls) {
    let shown = body.querySelector(".tool-calls-live");
    if (!shown) {
      shown = Object.assign(document.createElement("ul"), { className: "tool-calls tool-calls-live" });
      body.append(shown);
    }
    shown.hidden = !calls.length;
    calls.forEach((call, index) => {
      let entry = shown.children[index];
      if (!entry) {
        entry = Object.assign(document.createElement("li"), { className: "tool-call tool-call-live" });
        entry.innerHTML = '<div class="tool-call-head"><span class="tool-label">Calling</span> <code class="tool-name"></code>…</div>' +
          '<pre class="tool-arguments" hidden><code></code></pre>';
        shown.append(entry);
      }
      entry.querySelector(".tool-name").textContent = call.name;
      const args = entry.querySelector(".tool-arguments");
      args.hidden = !call.arguments;
      args.firstElementChild.textContent = call.arguments + (call.more ? "…" : "");
    });
  }

  // Whether fetched HTML of a message (``element``) may take the place of what the page shows of it
  // (``current``, or nothing): not when it is older. Shown for the first time but older than an event
  // seen (the event came first), it is brought forward: marked streaming, or fetched again once ended.
  function admit(element, current, refreshMessage) {
    const id = element.dataset.id;
    if (!id) return true;
    if (current) note(id, stateOf(current));
    const known = seen.get(id);
    const state = stateOf(element);
    if (!known || !older(state, known)) {
      note(id, state);
      return true;
    }
    if (current && !older(stateOf(current), state)) return false;
    if (known[0] === state[0] && known[1] === 1 && state[1] === 0) markStreaming(element);
    else if (known[1] === 2 && state[1] < 2) setTimeout(() => refreshMessage(id));
    return true;
  }

  window.PromptTrackerLive = {
    admit,

    connect({ handlers, catchUp, hasOpenReply }) {
      const socket = io({ transports: ["websocket"], reconnectionDelayMax: 10000 });
      let retryDelay = 1000;
      function retryLater() {
        setTimeout(() => { if (!socket.connected) socket.connect(); }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      }
      socket.on("connect", () => { retryDelay = 1000; catchUp(); });
      socket.on("connect_error", () => { if (!socket.active) retryLater(); });
      socket.on("disconnect", () => { if (!socket.active) retryLater(); });
      Object.entries(handlers).forEach(([name, handler]) => socket.on(name, handler));
      // Events are hints: while a reply is open the page asks for the record every 3 s when offline and
      // every 30 s when connected (a reply whose worker or web process died sends no event).
      let ticks = 0;
      setInterval(() => {
        ticks += 1;
        if (hasOpenReply() && (!socket.connected || ticks % 10 === 0)) catchUp();
      }, 3000);
      return socket;
    },

    // The handlers of a reply's own events, alike on every page that shows replies (payloads:
    // prompt_tracker/replies/live.py): a started reply says so, its text grows in place, and one that
    // ended is fetched again. ``refreshMessage(id)`` fetches a message again (the workbench: its rows);
    // ``concerns(payload)`` tells whether a reply's end is the page's business (by default: it shows it);
    // ``unseenStart(payload)`` runs when a reply the page does not show starts; ``scroller`` (the
    // playground's ``{ nearEnd, scrollToEnd }``) keeps the end in view while text is added.
    replyHandlers({ refreshMessage, concerns = ({ id }) => item(id), unseenStart = () => {}, scroller = null }) {
      const ended = (payload) => {
        note(payload.id, [payload.attempt || seen.get(payload.id)?.[0] || 0, 2]);
        return concerns(payload) && refreshMessage(payload.id);
      };
      return {
        "message.started": (payload) => {
          const attempt = payload.attempt || 0;
          note(payload.id, [attempt, 1]);
          const element = item(payload.id);
          if (!element) return unseenStart(payload);
          // Not over a state newer than this start (a fetch may have shown the reply ended already).
          if (compare([attempt, 1], stateOf(element)) > 0) markStreaming(element, payload.attempt);
        },
        // ``offset`` (characters of the reply before this text) makes a delta safe to see twice, or after
        // a catch-up whose HTML already holds part of it; a gap (a missed delta) fetches the message.
        "message.delta": ({ id, attempt, text, offset }) => {
          note(id, [attempt || seen.get(id)?.[0] || 0, 1]);
          const element = item(id);
          const live = element?.querySelector(".live");
          if (!live) return;
          // HTML fetched before the worker started (swapped in after "message.started") still shows the
          // reply waiting: its text arriving says it is being written.
          if (element.dataset.status === "pending") markStreaming(element);
          const shown = [...live.textContent].length;  // characters, as the server counts them
          const atEnd = scroller?.nearEnd();
          if (offset === undefined) live.textContent += text;
          else if (offset > shown) return refreshMessage(id);
          else live.textContent += [...text].slice(shown - offset).join("");
          if (atEnd) scroller.scrollToEnd();
        },
        // The tool calls a reply is making, as they assemble; its end (a fetch) shows them whole, as cards.
        "message.tool_calls": ({ id, attempt, calls }) => {
          note(id, [attempt || seen.get(id)?.[0] || 0, 1]);
          const element = item(id);
          const body = element?.querySelector(".live")?.parentElement;
          if (!body || (attempt && Number(element.dataset.attempt) > attempt)) return;
          if (element.dataset.status === "pending") markStreaming(element);
          const atEnd = scroller?.nearEnd();
          showCalls(body, calls || []);
          if (atEnd) scroller.scrollToEnd();
        },
        "message.done": ended,
        "message.failed": ended,
        "message.stopped": ended,
      };
    },
  };
})();
