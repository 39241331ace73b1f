// The research assistant's small behaviours; the CSP allows scripts only from this site's files.
(function () {
  "use strict";

  // Prompt templates: <button data-fill="#content" data-text="..."> puts the text in the question box,
  // then tells htmx the draft changed, so the estimate follows.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fill]");
    if (!button) return;
    var box = document.querySelector(button.getAttribute("data-fill"));
    if (!box) return;
    box.value = button.getAttribute("data-text");
    box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // Keep the newest turn in view as an answer streams in or a question is sent.
  document.addEventListener("htmx:afterSwap", function (event) {
    var turn = event.target.closest && event.target.closest(".turn");
    if (turn && turn.parentElement && turn.parentElement.lastElementChild === turn) {
      turn.scrollIntoView({ block: "end", behavior: "smooth" });
    }
  });
})();
