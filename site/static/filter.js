// Progressive enhancement: a filter box above each package table. Tables rendered by publish
// get it when the page loads; a suite list (a static shell, static/list.js) once its rows came.
"use strict";
window.rebuilderFilter = function (table) {
  if (table.getAttribute("data-filter-added")) return;
  table.setAttribute("data-filter-added", "1");
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
};
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table[data-filterable]:not([data-list])").forEach(window.rebuilderFilter);
});
