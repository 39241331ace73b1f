// The admin routes page: drag a route's steps into order. Sortable moves the list items; its "end" event
// (hx-trigger="end" on the card's form) makes htmx post the channels in their new order, and the answer is
// the card as saved. Loaded only by templates/admin/routes.html, after htmx and Sortable.
(function () {
  "use strict";

  htmx.onLoad(function (content) {
    var lists = content.matches && content.matches("[data-sortable]") ? [content] : [];
    if (content.querySelectorAll) {
      lists = lists.concat(Array.prototype.slice.call(content.querySelectorAll("[data-sortable]")));
    }
    lists.forEach(function (list) {
      new Sortable(list, {
        handle: ".drag-handle",
        animation: 150,
        ghostClass: "step-ghost",
        // Mouse and touch events rather than the browser's own drag and drop: the same on every device.
        forceFallback: true,
        onEnd: function () {
          // No second drag while the first is being saved; the saved card replaces this list anyway.
          this.option("disabled", true);
        }
      });
    });
  });
})();
