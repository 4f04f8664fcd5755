// Search over every package and maintainer page, from the prebuilt index publish writes
// (jobs/publish/search.py): api/v1/search/index.json lists the shards, each shard holds the
// records with a key in its bucket. A query fetches only the shards it needs (one or two
// small files), once each. Everything shown is text (textContent), never markup.
// Without JavaScript the page is a form and a list of links to every suite's list by name.
"use strict";
(function () {
  var SEPARATORS = " -_.+@<>/:,()";
  var SHARD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789";
  var LIMIT = 100;        // results shown
  var PARALLEL = 4;       // shards fetched at once for a short query
  var KINDS = ["package", "source package", "maintainer"];

  // What jobs/publish/site/text.py's NOT_XML replaces on every page publish renders: controls, bidi
  // marks, overrides and isolates, line separators, lone surrogates. The index keeps the exact value;
  // results show it as U+FFFD, as the package pages do ("\u202egnp.exe" must not read "exe.png").
  var NOT_SHOWN = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufffe\uffff\ud800-\udfff]/gu;
  function shown(value) { return String(value).replace(NOT_SHOWN, "\ufffd"); }

  function lower(s) { return s.replace(/[A-Z]/g, function (c) { return c.toLowerCase(); }); }

  // The same rules as search.py: code points, ASCII-only lowercasing.
  function shardForm(chars, depth) {
    var out = "";
    for (var i = 0; i < chars.length && i < depth; i++) {
      out += SHARD_CHARS.indexOf(chars[i]) >= 0 ? chars[i] : "_";
    }
    return out;
  }

  function keysOf(text, keyChars) {
    var chars = Array.from(lower(text)), out = [];
    if (chars.length) out.push(chars.slice(0, keyChars).join(""));
    for (var i = 1; i < chars.length; i++) {
      if (SEPARATORS.indexOf(chars[i - 1]) >= 0 && SEPARATORS.indexOf(chars[i]) < 0) {
        out.push(chars.slice(i, i + keyChars).join(""));
      }
    }
    return out;
  }

  function rank(keys, q, base) {
    for (var i = 0; i < keys.length; i++) {
      if (keys[i].lastIndexOf(q, 0) === 0) return base + (i === 0 ? (keys[i].length === q.length ? 0 : 1) : 2);
    }
    return -1;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("search");
    if (!form || !window.fetch || !window.Promise || !Array.from) return;
    var input = document.getElementById("search-q");
    var status = document.getElementById("search-status");
    var list = document.getElementById("search-results");
    var indexUrl = form.getAttribute("data-index");
    var base = new URL(indexUrl, document.baseURI);
    var index = null, shards = {}, seq = 0;

    function getJson(url) {
      return fetch(url).then(function (r) {
        if (!r.ok) throw new Error(url + ": HTTP " + r.status);
        return r.json();
      });
    }
    var indexReady = getJson(indexUrl).then(function (i) {
      if (!i || !Array.isArray(i.shards) || !Array.isArray(i.distros)) throw new Error("not a search index");
      index = i;
      return i;
    });

    function shardFile(bucket, page) {
      return new URL("k-" + bucket + (page === 1 ? "" : "." + page) + ".json", base).href;
    }
    function shard(entry) {  // [bucket, pages, records] → every record of the bucket
      var key = entry[0];
      if (!shards[key]) {
        var pages = [];
        for (var p = 1; p <= entry[1]; p++) {
          pages.push(getJson(shardFile(entry[0], p)).then(function (s) { return Array.isArray(s.records) ? s.records : []; }));
        }
        shards[key] = Promise.all(pages).then(function (parts) { return [].concat.apply([], parts); });
        shards[key].catch(function () { delete shards[key]; });
      }
      return shards[key];
    }

    function matches(records, q, found) {
      for (var i = 0; i < records.length; i++) {
        var r = records[i];
        if (!Array.isArray(r) || typeof r[2] !== "string") continue;
        var id = r[0] + "\u0000" + r[1] + "\u0000" + r[2];
        if (found.has(id)) continue;
        var score = rank(keysOf(r[2], index.key_chars), q, 0);
        if (score < 0 && r[3]) score = rank(keysOf(String(r[3]), index.key_chars), q, 3);
        if (score >= 0) found.set(id, {score: score, record: r});
      }
    }

    function href(r) {
      if (typeof r[5] === "string" && r[5] !== "") return r[5];
      if (r[0] === 2) return "maintainers/" + r[2] + ".html";
      return "packages/" + index.distros[r[1]] + "/" + r[2] + ".html";
    }

    function show(q, found, complete, started) {
      var items = Array.from(found.values());
      items.sort(function (a, b) {
        return a.score - b.score || a.record[2].length - b.record[2].length ||
          (a.record[2] < b.record[2] ? -1 : a.record[2] > b.record[2] ? 1 : a.record[1] - b.record[1]);
      });
      var fragment = document.createDocumentFragment();
      items.slice(0, LIMIT).forEach(function (item) {
        var r = item.record, li = document.createElement("li"), a = document.createElement("a");
        a.setAttribute("href", href(r));  // a site key: this page is at the site's root
        a.textContent = shown(r[2]);
        li.appendChild(a);
        var what = document.createElement("span");
        what.className = "what";
        var parts = [KINDS[r[0]] || "?"];
        if (r[0] === 2) {
          parts.push(r[4] + (r[4] === 1 ? " package" : " packages"));
        } else {
          parts.push(index.distros[r[1]]);
          if (r[3]) parts.push("source " + r[3]);
          if (r[4]) parts.push(String(r[4]));
        }
        what.textContent = shown(" " + parts.join(" · "));
        li.appendChild(what);
        fragment.appendChild(li);
      });
      list.replaceChildren(fragment);
      var n = items.length;
      status.textContent = n === 0 ? "No package or maintainer matches “" + shown(q) + "”." :
        (complete ? n + (n === 1 ? " match" : " matches") : "More than " + LIMIT + " matches") +
        (n > LIMIT ? "; the first " + LIMIT + " are shown, type more to narrow it." : ".");
      list.setAttribute("data-query", q);
      list.setAttribute("data-ms", String(Math.round((performance.now() - started) * 10) / 10));
    }

    function run(raw) {
      var started = performance.now(), mine = ++seq;
      var q = Array.from(lower(raw.trim())).slice(0, 200).join("");
      if (!q) {
        list.replaceChildren();
        status.textContent = "";
        list.setAttribute("data-query", "");
        return;
      }
      indexReady.then(function () {
        var chars = Array.from(q);
        q = chars.slice(0, index.key_chars).join("");
        var wanted = shardForm(chars, index.max_depth);
        var within = [], longer = [];  // buckets that are prefixes of the query; buckets that extend it
        index.shards.forEach(function (entry) {
          if (wanted.lastIndexOf(entry[0], 0) === 0) within.push(entry);
          else if (entry[0].lastIndexOf(wanted, 0) === 0) longer.push(entry);
        });
        var found = new Map();
        return Promise.all(within.map(shard)).then(function (parts) {
          parts.forEach(function (records) { matches(records, q, found); });
          var next = 0;
          function more() {  // a short query: shards in order until enough results
            if (mine !== seq) return null;
            if (found.size > LIMIT || next >= longer.length) return next >= longer.length;
            var batch = longer.slice(next, next + PARALLEL);
            next += batch.length;
            return Promise.all(batch.map(shard)).then(function (parts) {
              parts.forEach(function (records) { matches(records, q, found); });
              return more();
            });
          }
          return more();
        }).then(function (complete) {
          if (mine === seq && complete !== null) show(q, found, complete, started);
        });
      }).catch(function (error) {
        if (mine !== seq) return;
        list.replaceChildren();
        status.textContent = "The search index could not be read (" + error.message + "); the lists below still work.";
        list.setAttribute("data-query", q);
      });
    }

    input.addEventListener("input", function () { run(input.value); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      history.replaceState(null, "", "?q=" + encodeURIComponent(input.value));
      run(input.value);
    });
    var initial = new URLSearchParams(location.search).get("q");
    if (initial) {
      input.value = initial;
      run(initial);
    }
  });
})();
