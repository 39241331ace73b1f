// Waybill's small behaviours; the CSP allows scripts only from this site's files, never inline.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#element-id"> copies that element's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.innerText.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Filter forms send only the fields that are set, so a pushed URL reads /receipts?fallback=yes, not ?status=&model=&...
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.verb !== "get") return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (name) { if (params[name] === "") delete params[name]; });
  });

  // Live panels poll only while the tab is visible: a hidden tab's polls are dropped,
  // and the panel refreshes once when the tab comes back (hx-trigger "..., visible").
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.hidden && event.detail.elt.hasAttribute("data-poll")) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-poll]").forEach(function (panel) { htmx.trigger(panel, "visible"); });
  });
})();
