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
(() => {
  "use strict";
  const form = document.getElementById("settings-form");
  if (!form) return;
  const note = document.getElementById("settings-unsaved");
  const state = () => new URLSearchParams(new FormData(form)).toString();
  const saved = state();
  const update = () => {
    const dirty = state() !== saved;
    form.classList.toggle("is-dirty", dirty);
    if (dirty) form.dataset.dirty = "1";
    else delete form.dataset.dirty;
    if (note) note.hidden = !dirty;
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  // A form shown again with what was typed (refused, or another tab saved first) is unsaved from the start.
  if (form.querySelector(".field-error, #settings-stale[data-conflict]")) {
    form.dataset.dirty = "1";
    form.classList.add("is-dirty");
    if (note) note.hidden = false;
  }
})();
