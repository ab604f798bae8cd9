// The pages' Socket.IO connection (the official client, static/vendor/socket.io.min.js): WebSocket only
// (any web process can take it), with the client's own ping timeout and reconnection. After a refusal
// (no stored session yet) or a server-side disconnect the client does not retry by itself, so this does,
// with a growing delay. While the socket is down, ``catchUp`` runs every few seconds if a reply is open,
// and always once on (re)connect: a page never trusts that it saw every event.
(() => {
  "use strict";
  const item = (id) => document.getElementById("m-" + id);  // a message's element, if the page shows it

  function markStreaming(element) {
    element.dataset.status = "streaming";
    element.classList.replace("status-pending", "status-streaming");
    const typing = element.querySelector(".typing");
    if (typing) typing.textContent = "writing…";
  }

  window.PromptTrackerLive = {
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
      setInterval(() => { if (!socket.connected && hasOpenReply()) catchUp(); }, 3000);
      return socket;
    },

    // The handlers of a reply's own events, alike on every page that shows replies (payloads:
    // prompt_tracker/replies/live.py): a started reply says so, its text grows in place, and one that
    // ended is fetched again. ``refreshMessage(id)`` fetches a message again (the workbench: its rows);
    // ``concerns(payload)`` tells whether a reply's end is the page's business (by default: it shows it);
    // ``unseenStart(payload)`` runs when a reply the page does not show starts; ``scroller`` (the
    // playground's ``{ nearEnd, scrollToEnd }``) keeps the end in view while text is added.
    replyHandlers({ refreshMessage, concerns = ({ id }) => item(id), unseenStart = () => {}, scroller = null }) {
      const ended = (payload) => concerns(payload) && refreshMessage(payload.id);
      return {
        "message.started": (payload) => {
          const element = item(payload.id);
          if (!element) return unseenStart(payload);
          markStreaming(element);
        },
        // ``offset`` (characters of the reply before this text) makes a delta safe to see twice, or after
        // a catch-up whose HTML already holds part of it; a gap (a missed delta) fetches the message.
        "message.delta": ({ id, text, offset }) => {
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
        "message.done": ended,
        "message.failed": ended,
        "message.stopped": ended,
      };
    },
  };
})();
