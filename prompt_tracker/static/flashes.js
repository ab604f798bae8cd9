// Flash messages close with their × button (shown only when this script runs; the next page has none anyway).
(() => {
  "use strict";
  document.documentElement.classList.add("can-dismiss");
  document.addEventListener("click", (event) => {
    const button = event.target.closest(".flash-close");
    if (!button) return;
    const flash = button.closest(".flash");
    const flashes = flash.parentElement;
    flash.remove();
    if (flashes.classList.contains("flashes") && !flashes.children.length) flashes.remove();
  });
})();
