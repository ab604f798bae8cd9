// What is typed in a box marked data-draft survives a reload and a plain form post (a settings save):
// it is kept in this tab's sessionStorage under the box's key until the box is emptied. A script that
// sends the text empties the box and dispatches "input". Text the server put back in the box wins.
(() => {
  "use strict";
  for (const box of document.querySelectorAll("textarea[data-draft]")) {
    const key = "prompt-tracker:draft:" + box.dataset.draft;
    try {
      if (!box.value) box.value = sessionStorage.getItem(key) || "";
    } catch { /* storage off: nothing kept, nothing lost either */ }
    box.addEventListener("input", () => {
      try {
        if (box.value) sessionStorage.setItem(key, box.value);
        else sessionStorage.removeItem(key);
      } catch { /* storage off */ }
    });
  }
})();
