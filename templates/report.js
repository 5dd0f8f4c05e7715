// The contact sheet's script: draws one page of the grid from the JSON in #report-data, filters it, and shows
// a large view with keyboard navigation. Everything from the data goes into the page through textContent and
// setAttribute (checked relative paths only): never as HTML. No network, no dependencies.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var PAGE_IMAGES = 150; // images drawn at once: a page of a 10,000-image campaign stays a few thousand nodes
  var PATH_OK = /^[A-Za-z0-9._~%\/-]+$/;

  var jobs = {};
  data.jobs.forEach(function (job, i) {
    job.order = i;
    job.colOrder = {};
    jobs[job.id] = job;
  });
  data.variants.forEach(function (v, i) {
    v.order = i;
    var job = jobs[v.job];
    if (!job) {
      job = jobs[v.job] = { id: v.job, name: v.job, axes: Object.keys(v.axes), column: null, order: 1e9, colOrder: {} };
    }
    var col = job.column ? valueOf(v, job.column) : "";
    if (!(col in job.colOrder)) job.colOrder[col] = Object.keys(job.colOrder).length;
    job.perVariant = Math.max(job.perVariant || 0, v.images.length);
    v.images.forEach(function (img) {
      img.v = v;
      var request = data.requests[img.request];
      if (!img.aspect) img.aspect = (request && request.params && request.params.aspect_ratio) || "";
    });
  });

  function valueOf(v, axis) {
    return Object.prototype.hasOwnProperty.call(v.axes, axis) ? String(v.axes[axis]) : "\u2014";
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setPath(node, attr, path) {
    if (typeof path === "string" && PATH_OK.test(path)) node.setAttribute(attr, path);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Filters (kept in the URL's fragment so that a view can be shared)

  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var changedOnly = document.getElementById("changed-only");
  var search = document.getElementById("search");
  var state = { page: 0 };

  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    selects.forEach(function (s) {
      var want = params.get(s.getAttribute("data-filter")) || "";
      s.value = Array.prototype.some.call(s.options, function (o) { return o.value === want; }) ? want : "";
    });
    changedOnly.checked = params.get("changed") === "1";
    search.value = params.get("q") || "";
    state.page = Math.max(0, (parseInt(params.get("page") || "1", 10) || 1) - 1);
  }

  function writeHash() {
    var params = new URLSearchParams();
    selects.forEach(function (s) { if (s.value) params.set(s.getAttribute("data-filter"), s.value); });
    if (changedOnly.checked) params.set("changed", "1");
    if (search.value) params.set("q", search.value);
    if (state.page) params.set("page", String(state.page + 1));
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) {
      /* some file:// contexts refuse; the view still works */
    }
  }

  function currentFilters() {
    var f = { axes: [] };
    selects.forEach(function (s) {
      var key = s.getAttribute("data-filter");
      s.classList.toggle("active", !!s.value);
      if (!s.value) return;
      if (key.indexOf("axis:") === 0) f.axes.push([key.slice(5), s.value]);
      else f[key] = s.value;
    });
    f.changed = changedOnly.checked;
    f.q = search.value.trim().toLowerCase();
    search.classList.toggle("active", !!f.q);
    document.querySelectorAll(".count").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-badge") === f.badge));
    });
    return f;
  }

  function imageMatches(img, f) {
    if (f.badge && img.badge !== f.badge) return false;
    if (f.changed && img.badge !== "changed") return false;
    if (f.aspect && img.aspect !== f.aspect) return false;
    return true;
  }

  function variantMatches(v, f) {
    if (f.job && v.job !== f.job) return false;
    if (f.product && String(v.product) !== f.product) return false;
    if (f.scene && String(v.scene) !== f.scene) return false;
    for (var i = 0; i < f.axes.length; i++) {
      if (!Object.prototype.hasOwnProperty.call(v.axes, f.axes[i][0]) || String(v.axes[f.axes[i][0]]) !== f.axes[i][1]) return false;
    }
    if (f.q) {
      if (v.haystack === undefined) v.haystack = (v.id + "\n" + v.prompt).toLowerCase();
      if (v.haystack.indexOf(f.q) < 0) return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Layout: job -> (product, scene) group -> rows (the other axes) x columns (the job's column axis)

  var blocks = []; // one per row of a group: {job, group, row, cells: [[col, [variant with shown images]]], count}
  var pages = []; // [first block, end block)
  var flat = []; // images in the order drawn, for the large view

  function layout() {
    var f = currentFilters();
    var groups = {};
    var orderedGroups = [];
    data.variants.forEach(function (v) {
      if (!variantMatches(v, f)) return;
      var shown = v.images.filter(function (img) { return imageMatches(img, f); });
      if (!shown.length) return;
      var job = jobs[v.job];
      var gkey = v.job + "\u0000" + v.product + "\u0000" + v.scene;
      var g = groups[gkey];
      if (!g) {
        g = groups[gkey] = { key: gkey, job: job, product: v.product, scene: v.scene, rows: {}, rowOrder: [], cols: {}, first: v.order };
        orderedGroups.push(g);
      }
      var rowAxes = job.axes.filter(function (a) { return a !== job.column && Object.prototype.hasOwnProperty.call(v.axes, a); });
      var rkey = rowAxes.map(function (a) { return a + "=" + v.axes[a]; }).join("\u0000");
      var row = g.rows[rkey];
      if (!row) {
        row = g.rows[rkey] = { label: rowAxes.map(function (a) { return [a, String(v.axes[a])]; }), cells: {}, count: 0 };
        g.rowOrder.push(row);
      }
      var col = job.column ? valueOf(v, job.column) : "";
      g.cols[col] = true;
      (row.cells[col] = row.cells[col] || []).push({ v: v, images: shown });
      row.count += shown.length;
    });
    orderedGroups.sort(function (a, b) { return a.job.order - b.job.order || a.first - b.first; });
    blocks = [];
    flat = [];
    orderedGroups.forEach(function (g) {
      var cols = Object.keys(g.cols).sort(function (a, b) { return g.job.colOrder[a] - g.job.colOrder[b]; });
      g.colList = cols;
      g.rowOrder.forEach(function (row) {
        var cells = cols.map(function (c) { return [c, row.cells[c] || []]; });
        var start = flat.length;
        cells.forEach(function (cell) {
          cell[1].forEach(function (entry) {
            entry.images.forEach(function (img) {
              img.k = flat.length;
              flat.push(img);
            });
          });
        });
        blocks.push({ group: g, row: row, cells: cells, count: row.count, start: start });
      });
    });
    pages = [];
    var first = 0;
    var count = 0;
    blocks.forEach(function (b, i) {
      if (count > 0 && count + b.count > PAGE_IMAGES) {
        pages.push([first, i]);
        first = i;
        count = 0;
      }
      count += b.count;
    });
    if (blocks.length) pages.push([first, blocks.length]);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Drawing one page

  var sheet = document.getElementById("sheet");

  function thumbSize(job) {
    var n = job.perVariant || 1;
    return n <= 1 ? 200 : n === 2 ? 160 : n <= 4 ? 120 : 96;
  }

  function fit(img, box) {
    var w = img.w || 1;
    var h = img.h || 1;
    var s = Math.min(box / w, box / h);
    return [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
  }

  function thumbButton(img, index, box, before) {
    var button = el("button", "thumb" + (before ? " before" : ""));
    button.type = "button";
    button.setAttribute("data-index", String(index));
    var label = img.v.id + " \u00b7 image " + img.n + (before ? " (before)" : "");
    button.setAttribute("aria-label", label);
    button.title = label;
    var src = before ? img.prev.thumb : img.thumb;
    if (src) {
      var size = fit(img, before ? Math.round(box * 0.62) : box);
      var pic = el("img");
      pic.setAttribute("loading", "lazy");
      pic.setAttribute("decoding", "async");
      pic.setAttribute("alt", label);
      pic.width = size[0];
      pic.height = size[1];
      setPath(pic, "src", src);
      button.appendChild(pic);
      button.appendChild(el("span", "badge b-" + (before ? "unchanged" : img.badge), before ? "before" : img.badge));
      if (!before) button.appendChild(el("span", "num", "#" + img.n));
    } else {
      button.className = "thumb missing";
      button.style.width = box + "px";
      button.style.height = box + "px";
      button.appendChild(el("span", "badge b-" + img.badge, img.badge));
      button.appendChild(el("span", "why", img.reason ? img.reason.split("\n")[0] : "no image yet"));
    }
    return button;
  }

  function drawCell(entries, box) {
    var cell = el("div", "cell");
    entries.forEach(function (entry) {
      var shots = el("div", "shots");
      entry.images.forEach(function (img) {
        var index = img.k;
        if (img.prev && img.src) {
          var pair = el("div", "pair");
          pair.title = "before \u2192 after";
          pair.appendChild(thumbButton(img, index, box, true));
          pair.appendChild(el("span", "arrow", "\u2192"));
          pair.appendChild(thumbButton(img, index, box, false));
          shots.appendChild(pair);
        } else {
          shots.appendChild(thumbButton(img, index, box, false));
        }
      });
      cell.appendChild(shots);
      var keys = Object.keys(entry.v.axes);
      if (keys.length) {
        var axes = el("ul", "axes");
        keys.forEach(function (k) {
          var li = el("li");
          li.appendChild(el("span", "k", k + " "));
          li.appendChild(document.createTextNode(String(entry.v.axes[k])));
          axes.appendChild(li);
        });
        cell.appendChild(axes);
      }
    });
    return cell;
  }

  function groupTitle(g, continued) {
    var h = el("h3");
    h.appendChild(el("span", null, g.product === null || g.product === undefined ? "no product" : g.product));
    h.appendChild(el("span", "sep", "\u00b7"));
    h.appendChild(el("span", null, g.scene === null || g.scene === undefined ? "no scene" : g.scene));
    if (continued) h.appendChild(el("span", "cont", "(continued)"));
    return h;
  }

  function draw() {
    var frag = document.createDocumentFragment();
    if (!pages.length) {
      frag.appendChild(el("p", "empty", "No image matches these filters."));
    } else {
      state.page = Math.min(state.page, pages.length - 1);
      var range = pages[state.page];
      var section = null;
      var grid = null;
      var lastJob = null;
      var lastGroup = null;
      for (var i = range[0]; i < range[1]; i++) {
        var b = blocks[i];
        var job = b.group.job;
        if (job !== lastJob) {
          section = el("section", "job");
          var h2 = el("h2");
          h2.appendChild(el("span", null, job.name));
          if (job.operation) h2.appendChild(el("span", "op", job.operation));
          section.appendChild(h2);
          if (job.description) section.appendChild(el("p", "jobdesc", job.description));
          frag.appendChild(section);
          lastJob = job;
          lastGroup = null;
        }
        var box = thumbSize(job);
        if (b.group !== lastGroup) {
          var article = el("article", "group");
          var continued = i === range[0] && i > 0 && blocks[i - 1].group === b.group;
          article.appendChild(groupTitle(b.group, continued));
          var scroll = el("div", "scroll");
          grid = el("div", "grid");
          var hasRows = b.group.rowOrder.some(function (r) { return r.label.length; });
          var cols = b.group.colList;
          grid.style.gridTemplateColumns = (hasRows ? "minmax(6rem, max-content) " : "") + "repeat(" + cols.length + ", max-content)";
          grid.hasRows = hasRows;
          if (job.column) {
            if (hasRows) grid.appendChild(el("div", "corner"));
            cols.forEach(function (c) {
              var head = el("div", "colhead");
              head.appendChild(el("span", "k", job.column + " "));
              head.appendChild(document.createTextNode(c));
              grid.appendChild(head);
            });
          }
          scroll.appendChild(grid);
          article.appendChild(scroll);
          section.appendChild(article);
          lastGroup = b.group;
        }
        if (grid.hasRows) {
          var rh = el("div", "rowhead");
          b.row.label.forEach(function (pair, j) {
            if (j) rh.appendChild(document.createTextNode(" \u00b7 "));
            rh.appendChild(el("span", "k", pair[0] + " "));
            rh.appendChild(document.createTextNode(pair[1]));
          });
          grid.appendChild(rh);
        }
        b.cells.forEach(function (cell) { grid.appendChild(drawCell(cell[1], box)); });
      }
    }
    sheet.textContent = "";
    sheet.appendChild(frag);
    drawPager();
  }

  function drawPager() {
    var total = flat.length;
    var all = data.variants.reduce(function (n, v) { return n + v.images.length; }, 0);
    ["pager-top", "pager-bottom"].forEach(function (id) {
      var pager = document.getElementById(id);
      pager.textContent = "";
      var shown = el("span", "shown");
      if (!pages.length) {
        shown.textContent = "0 of " + all.toLocaleString("en") + " images";
      } else {
        var range = pages[state.page];
        var from = blocks[range[0]].start + 1;
        var to = range[1] < blocks.length ? blocks[range[1]].start : total;
        shown.textContent = "images " + from.toLocaleString("en") + "\u2013" + to.toLocaleString("en") + " of " +
          total.toLocaleString("en") + (total < all ? " shown (" + all.toLocaleString("en") + " in all)" : "");
      }
      pager.appendChild(shown);
      if (pages.length > 1) {
        var prev = el("button", "page-prev", "\u2190 previous");
        prev.type = "button";
        prev.disabled = state.page === 0;
        prev.addEventListener("click", function () { goPage(state.page - 1); });
        var next = el("button", "page-next", "next \u2192");
        next.type = "button";
        next.disabled = state.page >= pages.length - 1;
        next.addEventListener("click", function () { goPage(state.page + 1); });
        pager.appendChild(prev);
        pager.appendChild(el("span", "page-of", "page " + (state.page + 1) + " of " + pages.length));
        pager.appendChild(next);
      }
    });
  }

  function goPage(n, keepScroll) {
    state.page = Math.max(0, Math.min(n, pages.length - 1));
    draw();
    writeHash();
    if (!keepScroll) sheet.scrollIntoView({ block: "start" });
  }

  function refresh() {
    state.page = 0;
    layout();
    draw();
    writeHash();
  }

  // ---------------------------------------------------------------------------------------------------------
  // The large view

  var box = document.getElementById("lightbox");
  var current = -1;
  var opener = null;

  function kv(list, key, value, mono) {
    if (value === undefined || value === null || value === "") return;
    list.appendChild(el("dt", null, key));
    var dd = el("dd", mono ? "mono" : null, typeof value === "string" ? value : JSON.stringify(value));
    list.appendChild(dd);
    return dd;
  }

  function figure(src, caption, alt) {
    var fig = el("figure");
    var pic = el("img");
    pic.setAttribute("alt", alt);
    setPath(pic, "src", src);
    fig.appendChild(pic);
    fig.appendChild(el("figcaption", null, caption));
    return fig;
  }

  function show(index) {
    if (!flat.length) return;
    current = (index + flat.length) % flat.length;
    var img = flat[current];
    var v = img.v;
    var request = data.requests[img.request] || {};
    var badge = document.getElementById("lb-badge");
    badge.className = "badge b-" + img.badge;
    badge.textContent = img.badge;
    document.getElementById("lb-title").textContent = v.id + " \u00b7 image " + img.n;
    document.getElementById("lb-pos").textContent = (current + 1) + " / " + flat.length;

    var images = document.getElementById("lb-images");
    images.textContent = "";
    if (img.src) {
      if (img.prev) images.appendChild(figure(img.prev.src, "before (previous run)", v.id + " before"));
      images.appendChild(figure(img.src, img.prev ? "now" : (img.w && img.h ? img.w + " \u00d7 " + img.h : ""), v.id));
    } else {
      images.appendChild(el("p", "nofile", img.badge === "pending" ? "Not generated yet: run `campaign generate` again." : "No image: " + img.badge + "."));
    }

    var axes = document.getElementById("lb-axes");
    axes.textContent = "";
    kv(axes, "job", (jobs[v.job] && jobs[v.job].name) || v.job);
    kv(axes, "product", v.product);
    kv(axes, "scene", v.scene);
    Object.keys(v.axes).forEach(function (k) { kv(axes, k, String(v.axes[k])); });
    if (!Object.prototype.hasOwnProperty.call(v.axes, "aspect_ratio")) kv(axes, "aspect ratio", img.aspect);
    if (v.source) kv(axes, "made from", v.source.variant + " \u00b7 image " + v.source.image);

    document.getElementById("lb-prompt").textContent = v.prompt || request.prompt || "(no prompt)";
    var reasonBox = document.getElementById("lb-reason-box");
    reasonBox.hidden = !(img.reason || img.note);
    document.getElementById("lb-reason-title").textContent = img.reason ? "Reason" : "Note";
    document.getElementById("lb-reason").textContent = img.reason || img.note || "";

    var params = document.getElementById("lb-params");
    params.textContent = "";
    var p = request.params || {};
    Object.keys(p).forEach(function (k) { kv(params, k, p[k], true); });
    (request.inputs || []).forEach(function (input) { kv(params, "input: " + input.role, input.file, true); });

    var prov = document.getElementById("lb-prov");
    prov.textContent = "";
    kv(prov, "request key", img.request, true);
    kv(prov, "model", img.model || request.model, true);
    var warning = data.models && data.models[img.model || request.model];
    if (warning) kv(prov, "model note", warning);
    kv(prov, "backend", img.backend || request.backend, true);
    kv(prov, "operation", request.operation, true);
    kv(prov, "created", img.created || request.created);
    kv(prov, "digest", img.digest, true);
    if (img.prev) kv(prov, "previous digest", img.prev.digest, true);
    if (img.src) {
      var dd = kv(prov, "file", " ");
      var a = el("a", "mono", decodeURIComponent(img.src));
      setPath(a, "href", img.src);
      a.target = "_blank";
      a.rel = "noopener";
      dd.textContent = "";
      dd.appendChild(a);
    }
    var next = flat[(current + 1) % flat.length];
    if (next && next.src) { var pre = new Image(); setPath(pre, "src", next.src); }
  }

  function open(index, from) {
    opener = from || null;
    box.hidden = false;
    document.body.classList.add("lb-open");
    show(index);
    document.getElementById("lb-close").focus();
  }

  function close() {
    box.hidden = true;
    document.body.classList.remove("lb-open");
    // Show the page holding the image last viewed, and give it focus.
    var page = pageOf(current);
    if (page !== state.page) goPage(page, true);
    var target = sheet.querySelector('.thumb:not(.before)[data-index="' + current + '"]') || opener;
    if (target) {
      target.focus();
      target.scrollIntoView({ block: "nearest" });
    }
  }

  function pageOf(index) {
    for (var p = 0; p < pages.length; p++) {
      var end = pages[p][1] < blocks.length ? blocks[pages[p][1]].start : flat.length;
      if (index < end) return p;
    }
    return state.page;
  }

  sheet.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button.thumb") : null;
    if (!button) return;
    open(parseInt(button.getAttribute("data-index"), 10), button);
  });
  box.addEventListener("click", function (e) {
    if (e.target.getAttribute("data-close")) close();
  });
  document.getElementById("lb-close").addEventListener("click", close);
  document.getElementById("lb-prev").addEventListener("click", function () { show(current - 1); });
  document.getElementById("lb-next").addEventListener("click", function () { show(current + 1); });
  document.addEventListener("keydown", function (e) {
    if (box.hidden) return;
    if (e.key === "Tab") {
      // Keep the focus inside the dialog while it is open.
      var focusable = box.querySelectorAll("button, a[href]");
      var first = focusable[0];
      var last = focusable[focusable.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      else if (!box.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
    }
    else if (e.key === "Escape") { e.preventDefault(); close(); }
    else if (e.key === "ArrowRight") { e.preventDefault(); show(current + 1); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); show(current - 1); }
  });

  // ---------------------------------------------------------------------------------------------------------
  // Wiring

  selects.forEach(function (s) { s.addEventListener("change", refresh); });
  changedOnly.addEventListener("change", refresh);
  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  });
  document.getElementById("reset").addEventListener("click", function () {
    selects.forEach(function (s) { s.value = ""; });
    changedOnly.checked = false;
    search.value = "";
    refresh();
  });
  document.querySelectorAll(".count").forEach(function (button) {
    button.addEventListener("click", function () {
      var status = selects.filter(function (s) { return s.getAttribute("data-filter") === "badge"; })[0];
      if (!status) return;
      var badge = button.getAttribute("data-badge");
      status.value = status.value === badge ? "" : badge;
      refresh();
    });
  });
  window.addEventListener("hashchange", function () {
    readHash();
    layout();
    draw();
  });

  readHash();
  layout();
  draw();
  document.documentElement.setAttribute("data-ready", "1");
})();
