// Progressive enhancement: a filter box above each package table. Without JavaScript the
// lists are complete pages (paginated, with a name index), so nothing depends on this.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table[data-filterable]").forEach(function (table) {
    var input = document.createElement("input");
    input.type = "search";
    input.className = "filter";
    input.placeholder = "Filter this page";
    input.setAttribute("aria-label", "Filter this page");
    table.parentNode.insertBefore(input, table);
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      rows.forEach(function (row) {
        row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) === -1;
      });
    });
  });
});
