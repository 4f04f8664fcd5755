// "Last published": every publish rewrites api/v1/status.json (a few hundred bytes) and this
// fills each page's banner from it, so a page that did not change still says whether
// publishing runs. Without JavaScript the dashboard shows the same, rendered by publish.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var banner = document.getElementById("published");
  if (!banner || !window.fetch) return;
  function ago(seconds) {
    var m = Math.max(0, Math.floor(seconds / 60));
    if (m < 60) return m + " min";
    var h = Math.floor(m / 60);
    return h < 48 ? h + " h " + (m % 60) + " min" : Math.floor(h / 24) + " d " + (h % 24) + " h";
  }
  function when(iso) { return iso.slice(0, 16).replace("T", " ") + " UTC"; }
  fetch(banner.getAttribute("data-src"), {cache: "no-cache"}).then(function (r) {
    if (!r.ok) throw new Error(r.status);
    return r.json();
  }).then(function (s) {
    if (typeof s.published_at !== "string") return;
    var now = Date.now() / 1000, at = Date.parse(s.published_at) / 1000;
    var text = "Last published " + when(s.published_at) + " (" + ago(now - at) + " ago)";
    if (typeof s.newest_result_at === "string") {
      text += "; newest result " + when(s.newest_result_at) + " (" + ago(now - Date.parse(s.newest_result_at) / 1000) +
        " ago)";
    } else {
      text += "; no result yet";
    }
    banner.textContent = text + ".";
    banner.setAttribute("data-published-at", s.published_at);
    banner.hidden = false;
  }).catch(function () { /* the banner stays as rendered */ });
});
