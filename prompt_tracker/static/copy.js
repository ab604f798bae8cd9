// Copy buttons (messages, code blocks, the request view). The buttons are in the page's HTML and shown
// only once this script runs; one listener on the document serves messages swapped in later too.
(() => {
  "use strict";
  document.documentElement.classList.add("can-copy");

  // data-copy="code": the block's code alone; "message": the message's source (a reply's Markdown, kept
  // in its <template class="source">; else its text as written); "target": #data-copy-target.
  function sourceText(button) {
    const kind = button.dataset.copy;
    if (kind === "code") return button.closest(".code-block")?.querySelector("pre code")?.textContent;
    if (kind === "message") {
      const message = button.closest(".message");
      const source = message?.querySelector(":scope > template.source");
      return source ? source.content.textContent : message?.querySelector(".body")?.textContent;
    }
    return document.getElementById(button.dataset.copyTarget || "")?.textContent;
  }

  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    // Plain HTTP on another host has no Clipboard API: copy through a selected, off-screen textarea.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    if (!copied) throw new Error("copy refused");
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest(".copy-button");
    if (!button) return;
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    const text = sourceText(button);
    try {
      if (text == null) throw new Error("nothing to copy");
      await copy(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
})();
