// Suite lists are static shells: publish writes a list's page once and rewrites only its JSON
// part when a package on it changes (one object instead of two). This fills the page's table
// and counts from that JSON. Every value is set as text (textContent), never parsed as HTML;
// links are site-relative paths from publish's own feed, and anything else is not linked.
"use strict";
(function () {
  // What jobs/publish/site/text.py's NOT_XML replaces on every page publish renders: controls, bidi
  // marks, overrides and isolates, line separators, lone surrogates. The feeds keep the exact value;
  // the rows show it as U+FFFD, as the package pages do ("\u202egnp.exe" must not read "exe.png").
  var NOT_SHOWN = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufffe\uffff\ud800-\udfff]/gu;
  function shown(value) { return String(value).replace(NOT_SHOWN, "\ufffd"); }
  function when(iso) {
    return typeof iso === "string" ? iso.slice(0, 16).replace("T", " ") + " UTC" : "never";
  }
  function safePath(path) {  // a relative site path: no scheme, no leading slash, no "..".
    return typeof path === "string" && path !== "" && !/^[a-z][a-z0-9+.-]*:/i.test(path) &&
      path.charAt(0) !== "/" && path.charAt(0) !== "\\" && !/(^|\/)\.\.(\/|$)/.test(path);
  }
  function link(root, path, text, type, cls) {
    if (!safePath(path)) return document.createTextNode(shown(text));
    var a = document.createElement("a");
    a.href = root + path;
    a.textContent = shown(text);
    if (type) a.type = type;
    if (cls) a.className = cls;
    return a;
  }
  function cell(tr, nodes) {
    var td = document.createElement("td");
    nodes.forEach(function (n, i) {
      if (i) td.appendChild(document.createTextNode(" "));
      td.appendChild(typeof n === "string" ? document.createTextNode(shown(n)) : n);
    });
    tr.appendChild(td);
    return td;
  }
  function row(root, classes, p, maintainer) {
    var tr = document.createElement("tr");
    var status = String(p.status || "");
    tr.className = "status-" + status.toLowerCase().replace(/[^a-z]/g, "");
    var name = [link(root, p.page, String(p.name))];
    if (p.source_name && p.source_name !== p.name) {
      var small = document.createElement("small");
      small.textContent = "(" + shown(p.source_name) + ")";
      name.push(small);
    }
    cell(tr, name);
    cell(tr, [String(p.version)]);
    if (maintainer) {
      cell(tr, [[p.distro, p.release, p.component, p.architecture].filter(function (v) {
        return typeof v === "string" && v !== "";
      }).join(" / ")]);
    } else {
      cell(tr, [String(p.artifact_architecture)]);
    }
    var span = document.createElement("span");
    span.className = "status " + tr.className;
    span.textContent = shown(status);
    cell(tr, [span]);
    var fc = p.failure_class && Object.prototype.hasOwnProperty.call(classes, p.failure_class) ?
      classes[p.failure_class] : null;
    if (fc && maintainer) {
      var label = document.createElement("span");
      label.className = "failure failure-" + p.failure_class;
      label.textContent = fc[0];
      cell(tr, [label]);
    } else {
      cell(tr, fc ? [link(root, fc[1], fc[0], null, "failure failure-" + p.failure_class)] : []);
    }
    cell(tr, [when(p.built_at)]);
    if (maintainer) return tr;
    var files = p.files || {}, out = [];
    if (files.log) out.push(link(root, files.log, "log", "text/plain"));
    if (files.diffoscope_html) out.push(link(root, files.diffoscope_html, "diffoscope"));
    if (files.diffoscope) out.push(link(root, files.diffoscope, "diffoscope (text)", "text/plain"));
    if (files.attestation) out.push(link(root, files.attestation, "attestation", "application/json"));
    cell(tr, out);
    return tr;
  }
  function counts(feed) {  // "<strong>P%</strong> reproducible: N GOOD, … of T packages. "
    var out = document.createDocumentFragment(), total = Number(feed.total) || 0;
    var strong = document.createElement("strong");
    strong.textContent = (total ? Math.round(1000 * (Number(feed.good) || 0) / total) / 10 : 0).toFixed(1) + "%";
    out.appendChild(strong);
    out.appendChild(document.createTextNode(" reproducible: "));
    [["good", "GOOD"], ["bad", "BAD"], ["fail", "FAIL"], ["unknown", "UNKWN"]].forEach(function (s, i) {
      if (i) out.appendChild(document.createTextNode(", "));
      var span = document.createElement("span");
      span.className = "status-" + s[1].toLowerCase();
      span.textContent = String(Number(feed[s[0]]) || 0) + " " + s[1];
      out.appendChild(span);
    });
    out.appendChild(document.createTextNode(" of " + total + " packages. "));
    return out;
  }
  function fill(table) {
    var root = table.getAttribute("data-root") || "";
    var classes = JSON.parse(table.getAttribute("data-classes") || "{}");
    var note = document.getElementById("list-note");
    fetch(table.getAttribute("data-list"), {cache: "no-cache"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (feed) {
      var body = table.tBodies[0], maintainer = table.getAttribute("data-kind") === "maintainer";
      (feed.packages || []).forEach(function (p) { body.appendChild(row(root, classes, p, maintainer)); });
      var headline = document.querySelector("[data-headline]");
      if (maintainer && headline) headline.insertBefore(counts(feed), headline.firstChild);
      document.querySelectorAll("[data-count]").forEach(function (e) { e.textContent = String(feed.count); });
      if (note) note.hidden = true;
      table.setAttribute("data-loaded", "1");
      if (window.rebuilderFilter) window.rebuilderFilter(table);
    }).catch(function (e) {
      if (note) note.textContent = "Could not load this list (" + e.message + "); its JSON feed is linked above.";
    });
  }
  function partCounts(nav) {
    fetch(nav.getAttribute("data-index"), {cache: "no-cache"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (index) {
      var parts = index.parts || [], shown = nav.querySelectorAll("[data-part]");
      shown.forEach(function (e, i) {
        if (parts[i]) e.textContent = "(" + String(parts[i].count) + ")";
      });
      document.querySelectorAll("[data-count]").forEach(function (e) { e.textContent = String(index.count); });
      nav.setAttribute("data-loaded", "1");
    }).catch(function () { /* the links work without the counts */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.fetch) return;
    document.querySelectorAll("table[data-list]").forEach(fill);
    document.querySelectorAll("[data-index]").forEach(partCounts);
  });
})();
