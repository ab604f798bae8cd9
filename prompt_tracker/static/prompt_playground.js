// A prompt's playground: Ctrl/Cmd+S saves the settings as the next version (the button's form post).
(() => {
  const button = document.getElementById("save-version");
  if (!button) return;
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "s") {
      event.preventDefault(); // not the browser's "Save page as"
      button.form.requestSubmit(button);
    }
  });
})();
