// A run's page, live: its socket joins the run's room; each ``eval.result`` (a result ended) and
// ``eval.run`` (the run's status changed) is a hint, and the page fetches the summary and the rows of
// the cases that changed, at most every 300 ms. On every (re)connect it fetches the summary again,
// since it never trusts that it saw every event. Without JavaScript the page reloads itself instead.
(() => {
  "use strict";
  const page = document.getElementById("run-page");
  if (!page || typeof io === "undefined") return;
  const runId = Number(page.dataset.run);
  const rowsUrl = page.dataset.rowsUrl;
  const changed = new Set();
  const changesOnly = new URLSearchParams(location.search).get("changes") === "1";
  let everything = false;  // after a (re)connect: every row, since events may have been missed
  let timer = null;
  let busy = false;

  function schedule() {
    if (!timer) timer = setTimeout(refresh, 300);
  }

  async function refresh() {
    timer = null;
    if (busy) return schedule();
    busy = true;
    const ids = Array.from(changed);
    const all = everything;
    changed.clear();
    everything = false;
    const query = new URLSearchParams({ ids: ids.join(",") });
    if (all) query.set("all", "1");
    if (changesOnly) query.set("changes", "1");
    try {
      const response = await fetch(rowsUrl + "?" + query.toString(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      const summary = document.getElementById("run-summary");
      if (summary) summary.outerHTML = data.summary;
      for (const [key, html] of Object.entries(data.rows)) {
        const row = document.getElementById(key);
        if (row) row.outerHTML = html;
      }
      // Stop, Resume and Retry failed follow the run's state (a focused button keeps its place).
      const controls = document.getElementById("run-controls");
      if (controls && !controls.contains(document.activeElement)) controls.outerHTML = data.controls;
      page.dataset.status = data.status;
    } catch (error) {
      ids.forEach((id) => changed.add(id));  // tried again at the next event or reconnect
      everything = everything || all;
    } finally {
      busy = false;
    }
  }

  const socket = io({ transports: ["websocket"], reconnectionDelayMax: 10000 });
  socket.on("connect", () => {
    socket.emit("eval.join", { run: runId });
    everything = true;
    schedule();
  });
  socket.on("eval.result", (event) => {
    if (event.run !== runId) return;
    changed.add(event.result);
    schedule();
  });
  socket.on("eval.run", (event) => {
    if (event.run === runId) schedule();
  });
})();
