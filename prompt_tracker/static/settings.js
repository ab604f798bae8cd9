// The settings form shows only the parameters the chosen provider sends (without this script, the
// page shows those of the saved provider).
(() => {
  "use strict";
  const provider = document.getElementById("provider");
  if (!provider) return;
  const showParams = () => {
    document.querySelectorAll(".param[data-providers]").forEach((param) => {
      param.hidden = !param.dataset.providers.split(" ").includes(provider.value);
    });
  };
  provider.addEventListener("change", showParams);
  showParams();
})();
// Unsaved settings: the form says it has changed (and playground.js asks before sending with them unsaved).
// What is typed is a draft in this tab's sessionStorage, like the message box's (drafts.js): a reload
// brings it back, still marked unsaved. A draft belongs to the saved settings it was typed over (the
// form's settings_version): once they change (saved here, or by another tab), it is dropped, with a
// word when it was not this tab's own save.
(() => {
  "use strict";
  const form = document.getElementById("settings-form");
  if (!form) return;
  const note = document.getElementById("settings-unsaved");
  const discard = document.getElementById("settings-discard");
  const base = form.elements.settings_version?.value || "";
  const key = "prompt-tracker:settings-draft:" + form.getAttribute("action");
  const kept = (name) => name && name !== "csrf_token" && name !== "settings_version";
  // What a person types or ticks: not hidden inputs (a hidden "off" beside a checkbox of the same name,
  // whose value a restore would overwrite for good: a hidden input's value is its default).
  const typed = (field) => !["submit", "button", "hidden"].includes(field.type);
  const fields = () => [...form.elements].filter((field) => kept(field.name) && typed(field));
  const valueOf = (field) => (field.type === "checkbox" ? (field.checked ? "on" : "") : field.value);
  const state = () => new URLSearchParams(new FormData(form)).toString();
  const storage = {
    read() { try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch { return null; } },
    write(draft) { try { sessionStorage.setItem(key, JSON.stringify(draft)); } catch { /* storage off */ } },
    clear() { try { sessionStorage.removeItem(key); } catch { /* storage off */ } },
  };
  // The saved settings are what the server wrote in the form: what was typed before this script ran (a
  // quick hand on a slow page) is a change like any other, kept and said to be unsaved.
  const typedEarly = fields().map((field) => [field.name, valueOf(field)]);
  form.reset();
  const saved = state();
  const update = () => {
    const dirty = state() !== saved || form.dataset.returned === "1";
    form.classList.toggle("is-dirty", dirty);
    if (dirty) form.dataset.dirty = "1";
    else delete form.dataset.dirty;
    if (note) note.hidden = !dirty;
    if (discard) discard.hidden = !dirty || form.dataset.returned === "1";
    if (dirty) storage.write({ base, values: fields().map((field) => [field.name, valueOf(field)]) });
    else storage.clear();
  };
  const restore = (values) => {
    const byName = new Map(values);
    const provider = form.elements.provider;
    if (provider && byName.has("provider")) {  // first: choosing a provider may propose its first model
      provider.value = byName.get("provider");
      provider.dispatchEvent(new Event("change"));
    }
    for (const field of fields()) {
      if (field === provider || !byName.has(field.name)) continue;
      if (field.type === "checkbox") field.checked = byName.get(field.name) === "on";
      else field.value = byName.get(field.name);
    }
  };
  const dropped = (text) => {
    const line = Object.assign(document.createElement("p"), { className: "flash flash-error", id: "settings-draft-dropped", textContent: text });
    line.setAttribute("role", "status");
    form.querySelector(".save-bar")?.after(line);
  };

  restore(typedEarly);
  const draft = storage.read();
  // A form shown again with what was typed (refused, or another tab saved first) is unsaved from the start;
  // what the server put back wins over a draft.
  if (form.querySelector(".field-error, #settings-stale[data-conflict]")) form.dataset.returned = "1";
  else if (draft && draft.base === base && Array.isArray(draft.values)) {
    restore(draft.values);
    form.closest("details")?.setAttribute("open", "");  // on a phone too: the unsaved changes show
  }
  else if (draft && !draft.submitted) {
    storage.clear();
    dropped("Your unsaved changes to these settings were dropped: the saved settings changed since " +
      "(another tab saved them). The form shows the saved ones.");
  } else if (draft) storage.clear();  // this tab's own save went through
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  // Discard: the form as the server showed it (the saved settings), the draft gone.
  discard?.addEventListener("click", () => {
    form.reset();
    form.elements.provider?.dispatchEvent(new Event("change"));
    if (form.elements.model) form.elements.model.value = form.elements.model.defaultValue;  // not the provider's first
    update();
  });
  // Saving: the draft stays until the page shows the saved settings (a refused save keeps it).
  form.addEventListener("submit", () => {
    const current = storage.read();
    if (current) storage.write({ ...current, submitted: true });
  });
  update();
})();
