/* Model job page: live charts by epoch (plotly.js), per-class table, previews with a lightbox, snapshots. */
(function () {
  "use strict";
  var live = document.getElementById("model-live");
  if (!live) return;
  var model = JSON.parse(document.getElementById("model-data").textContent);
  var logScale = document.getElementById("log-scale");
  var NARROW = window.matchMedia("(max-width: 640px)").matches;
  /* the mode bar shows on hover at the top right (titles are on the left); phones have no hover: none */
  var CONFIG = {displaylogo: false, responsive: true, displayModeBar: NARROW ? false : "hover"};

  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }
  function fmt(x, digits) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits); }

  /* Lines need two points: one point alone is drawn as a marker, a few as lines with markers. */
  function mode(xs, always) {
    var n = (xs || []).length;
    return n <= 1 ? "markers" : (always || n < 12 ? "lines+markers" : "lines");
  }
  /* x in epochs (DIGITS' unit) or iterations (Caffe's); the other one shows on hover */
  var xSelect = document.getElementById("x-axis");
  function xKey() { return xSelect && xSelect.value === "iteration" ? "iteration" : "epoch"; }
  function trace(cols, y, name, extra) {
    var byEpoch = xKey() === "epoch";
    var t = {x: byEpoch ? cols.epoch : cols.iteration, y: cols[y], customdata: byEpoch ? cols.iteration : cols.epoch,
             name: name, mode: mode(cols.epoch),
             hovertemplate: "%{y:.4g}<br>" + (byEpoch ? "epoch %{x:.2f} · iteration %{customdata}"
                                                      : "iteration %{x} · epoch %{customdata:.2f}") +
                            "<extra>" + name + "</extra>"};
    return Object.assign(t, extra || {});
  }
  function lossTraces(c) {
    return [trace(c.train, "loss", "train loss"), trace(c.val, "loss", "val loss", {mode: mode(c.val.epoch, true)})];
  }
  function accTraces(c) {
    var m = mode(c.val.epoch, true);
    return [trace(c.val, "pixel_acc", "pixel accuracy", {mode: m}), trace(c.val, "mean_iou", "mean IoU", {mode: m}),
            trace(c.val, "mean_acc", "mean accuracy", {mode: m, visible: "legendonly"}),
            trace(c.val, "fw_iou", "fw IoU", {mode: m, visible: "legendonly"})];
  }
  function yAxis(type, values) {
    var axis = {type: type || "linear", automargin: true};
    if (type !== "log") return axis;
    /* label decades only (10⁻², 10⁻³) when the data spans one; within a decade, 2 and 5 as small digits */
    var v = (values || []).filter(function (x) { return x > 0; });
    var lo = Math.min.apply(null, v), hi = Math.max.apply(null, v);
    axis.exponentformat = "power";
    if (v.length && hi / lo >= 10) {
      axis.dtick = 1;
    } else if (v.length && hi > lo) {
      /* within one decade: round numbers about evenly spaced on the log axis (plotly's default labels
         0.5 as a bare "5", and linear steps crowd at the top) */
      var ticks = [], minRatio = Math.pow(hi / lo, 1 / 5);
      for (var k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
        [1, 1.5, 2, 3, 4, 5, 7].forEach(function (m) {
          var t = m * Math.pow(10, k);
          if (t >= lo * 0.95 && t <= hi * 1.05 && (!ticks.length || t / ticks[ticks.length - 1] >= minRatio)) ticks.push(t);
        });
      }
      axis.tickvals = ticks;
      axis.ticktext = ticks.map(function (t) { return String(+t.toPrecision(3)); });
    }
    if (v.length && hi === lo) { axis.range = [Math.log10(lo) - 0.5, Math.log10(lo) + 0.5]; axis.autorange = false; }
    return axis;
  }
  function layout(title, ytype, values) {
    return {title: {text: title, font: {size: 13}, x: 0.01, xanchor: "left"}, margin: {t: 32, r: 10, b: 40, l: 55},
            xaxis: {title: {text: xKey(), standoff: 6}, rangemode: "tozero", automargin: true},
            yaxis: yAxis(ytype, values), legend: {orientation: "h", x: 0, y: -0.3, yanchor: "top"},
            uirevision: title + (ytype || "") + xKey()};
  }

  /* A chart with no points yet says what it waits for instead of showing meaningless 0..1 / -1..4 axes. */
  function waitingText() {
    var state = live.dataset.state;
    if (state === "queued") return "queued: waiting for a worker";
    if (state === "running") return "waiting for the first iteration (compiling the network, loading data)…";
    return "no iterations were logged";
  }
  function whenEmpty(lay, xs, text) {
    if (xs && xs.length) return lay;
    lay.xaxis.visible = false;
    lay.yaxis.visible = false;
    lay.showlegend = false;
    lay.annotations = [{text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
                        font: {color: "#6b7280", size: 13}}];
    lay.uirevision += " (empty)";  /* the first points then start from fresh axes */
    return lay;
  }
  function confusionTrace(m) {
    var lv = m.last_val;
    if (!lv || !lv.confusion) return null;
    var names = m.classes.map(function (c) { return c.name; });
    var z = lv.confusion.map(function (row) {
      var s = row.reduce(function (a, b) { return a + b; }, 0);
      return row.map(function (v) { return s ? v / s : null; });
    });
    return [{z: z, x: names, y: names, type: "heatmap", colorscale: [[0, "#f7fbff"], [0.5, "#6baed6"], [1, "#08306b"]], zmin: 0, zmax: 1,
             hovertemplate: "true %{y}<br>predicted %{x}<br>%{z:.3f}<extra></extra>"}];
  }

  function draw(m) {
    if (!window.Plotly) return;
    var c = m.curves, yType = logScale && logScale.checked ? "log" : "linear";
    var losses = c.train.loss.concat(c.val.loss);
    Plotly.react("chart-loss", lossTraces(c), whenEmpty(layout("Loss", yType, losses), c.train.epoch, waitingText()), CONFIG);
    Plotly.react("chart-acc", accTraces(c),
                 whenEmpty(layout("Validation accuracy / IoU"), c.val.epoch,
                           c.train.epoch.length ? "no validation yet: it runs at the end of each validation interval"
                                                : waitingText()), CONFIG);
    var lrs = c.train.lr.filter(function (v) { return v !== null; });
    var lrLayout = whenEmpty(layout("Learning rate", yType, lrs), c.train.epoch, waitingText());
    lrLayout.showlegend = false;
    if (yType === "linear") lrLayout.yaxis.exponentformat = "e";
    if (lrs.length && yType === "linear" && Math.max.apply(null, lrs) === Math.min.apply(null, lrs)) {
      lrLayout.yaxis.range = [0, 2 * lrs[0] || 1];  /* a constant rate: show it against zero, not ±1 */
      lrLayout.yaxis.autorange = false;
      lrLayout.uirevision = "Learning rate " + lrs[0];
    }
    Plotly.react("chart-lr", [trace(c.train, "lr", "learning rate")], lrLayout, CONFIG);
    var conf = confusionTrace(m);
    if (conf) {
      Plotly.react("chart-confusion", conf, {margin: {t: 10, r: 10, b: 90, l: 90}, yaxis: {autorange: "reversed", title: {text: "true class"}, automargin: true},
                                             xaxis: {title: {text: "predicted class"}, automargin: true}, uirevision: "conf"}, CONFIG);
    }
  }

  function setText(role, text) { var e = document.querySelector('[data-role="' + role + '"]'); if (e) e.textContent = text; }

  /* ---- validation previews: a strip of thumbnails, each opens larger in a lightbox ---- */
  var box = document.getElementById("lightbox");
  function openLightbox(p) {
    if (!box) return;
    box.querySelector("img").src = p.url;
    box.querySelector("img").alt = p.caption;
    box.querySelector('[data-role="caption"]').textContent = p.caption;
    box.hidden = false;
    box.querySelector("button").focus();
  }
  if (box) {
    box.addEventListener("click", function (e) { if (e.target === box || e.target.closest("button")) box.hidden = true; });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") box.hidden = true; });
  }
  function drawPreviews(previews) {
    var strip = document.getElementById("preview-strip");
    if (!strip) return;
    var key = previews.map(function (p) { return p.url; }).join("|");
    if (strip.dataset.key === key) return;
    strip.dataset.key = key;
    strip.textContent = "";
    previews.forEach(function (p) {
      var fig = el("figure"), btn = el("button"), img = el("img"), cap = el("figcaption");
      if (p.record_url) {  /* the record in the dataset's explorer: its label, its neighbours */
        var link = el("a", p.name); link.href = p.record_url; link.title = "show this record in the dataset explorer";
        cap.appendChild(link);
      } else cap.textContent = p.name;
      btn.type = "button"; btn.className = "preview"; btn.title = p.caption + " (click to enlarge)";
      img.src = p.url; img.alt = p.caption; img.loading = "lazy";
      btn.appendChild(img); fig.appendChild(btn); fig.appendChild(cap);
      btn.addEventListener("click", function () { openLightbox(p); });
      strip.appendChild(fig);
    });
  }

  function update(m) {
    draw(m);
    setText("epoch", fmt(m.epoch, 2));
    setText("iteration", m.iteration === null ? "–" : String(m.iteration));
    setText("images-per-s", fmt(m.images_per_s, 1));
    setText("best-miou", fmt(m.best_mean_iou, 3));
    var tbody = document.querySelector("#class-table tbody");
    if (tbody && m.per_class.length) {
      tbody.textContent = "";
      m.per_class.forEach(function (c) {
        var tr = el("tr"), sw = el("span");
        sw.className = "swatch"; sw.style.background = "rgb(" + c.color.join(",") + ")";
        var td = el("td"); td.appendChild(sw); tr.appendChild(td);
        tr.appendChild(el("td", c.name));
        tr.appendChild(el("td", c.iou === null ? "absent" : fmt(c.iou, 3)));
        tr.appendChild(el("td", fmt(c.acc, 3)));
        tbody.appendChild(tr);
      });
      var none = document.querySelector('[data-role="no-val"]'); if (none) none.hidden = true;
    }
    drawPreviews(m.previews);
    var snaps = document.querySelector("#snapshot-table tbody");
    if (snaps) {
      snaps.textContent = "";
      m.snapshots.forEach(function (s) {
        var tr = el("tr");
        tr.appendChild(el("td", s.name + (s.best ? " (best val mIoU)" : "")));
        tr.appendChild(el("td", String(s.iteration))); tr.appendChild(el("td", String(s.epoch)));
        var size = el("td", s.size_text);
        size.dataset.role = "size"; size.title = s.size + " bytes"; tr.appendChild(size);
        var td = el("td"), a = el("a", ".h5"), b = el("a", ".caffemodel");
        a.href = s.h5_url; b.href = s.caffemodel_url;
        td.appendChild(a); td.appendChild(document.createTextNode(" · ")); td.appendChild(b); tr.appendChild(td);
        snaps.appendChild(tr);
      });
    }
  }

  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    fetch(live.dataset.jsonUrl, {cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { busy = false; if (d) { model = d.model; live.dataset.state = d.state; update(model); } })
      .catch(function () { busy = false; });
  }

  draw(model);
  drawPreviews(model.previews);
  if (logScale) logScale.addEventListener("change", function () { draw(model); });
  if (xSelect) xSelect.addEventListener("change", function () { draw(model); });
  document.addEventListener("job-status", refresh);
  /* metrics.jsonl grows faster than job.json changes: poll while the job is live */
  var poller = setInterval(function () {
    if (["done", "error", "aborted"].indexOf(live.dataset.state) >= 0) { clearInterval(poller); return; }
    refresh();
  }, 2500);
})();
