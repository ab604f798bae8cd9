// The pages' Socket.IO connection (the official client, static/vendor/socket.io.min.js): WebSocket only
// (any web process can take it), with the client's own ping timeout and reconnection. After a refusal
// (no stored session yet) or a server-side disconnect the client does not retry by itself, so this does,
// with a growing delay. While the socket is down, ``catchUp`` runs every few seconds if a reply is open,
// and always once on (re)connect: a page never trusts that it saw every event.
"use strict";
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
};
