// The pages' fetch calls. A 4xx JSON answer (a refusal with its sentence) is asked for as a 200 with its
// status in a header (web/errors.py): Chromium logs every 4xx a fetch receives as a console error, and
// an expected refusal is none. The caller sees the real status: the Response is rebuilt with it.
(() => {
  "use strict";
  window.PromptTrackerFetch = async (url, options = {}) => {
    const headers = { ...options.headers, "Prompt-Tracker-Refusals": "200" };
    const response = await fetch(url, { credentials: "same-origin", ...options, headers });
    const status = Number(response.headers.get("Prompt-Tracker-Status"));
    if (!status) return response;
    return new Response(await response.blob(), { status, statusText: "", headers: response.headers });
  };
})();
