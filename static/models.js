/* Model form (network choice, Validate, LR schedule preview) and model page (live charts). Uses plotly.js. */
(function () {
  "use strict";
  var PLOT_CONFIG = {displaylogo: false, responsive: true};

  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }
  function fmt(x, digits) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits); }

  /* ---------------- form ---------------- */
  var form = document.getElementById("model-form");
  if (form) {
    var panels = form.querySelectorAll(".net-panel");
    var showPanel = function () {
      var checked = form.querySelector('input[name="network_kind"]:checked');
      var kind = checked ? checked.value : "standard";
      panels.forEach(function (p) { p.hidden = p.dataset.kind !== kind; });
    };
    form.querySelectorAll('input[name="network_kind"]').forEach(function (r) { r.addEventListener("change", showPanel); });
    // Fine-tuning with another mean than the model's own: say what it costs.
    var meanSelect = form.elements.mean_subtraction, meanWarn = form.querySelector('[data-role="mean-warning"]');
    var warnMean = function () {
      var checked = form.querySelector('input[name="network_kind"]:checked');
      var fine = checked && (checked.value === "previous" || checked.value === "pretrained");
      meanWarn.hidden = !(fine && meanSelect.value !== "" && meanSelect.value !== "model");
    };
    if (meanSelect && meanWarn) {
      meanSelect.addEventListener("change", warnMean);
      form.querySelectorAll('input[name="network_kind"]').forEach(function (r) { r.addEventListener("change", warnMean); });
      warnMean();
    }
    showPanel();

    var netSelect = document.getElementById("network");
    var describe = function () {
      var opt = netSelect && netSelect.selectedOptions[0];
      var out = document.getElementById("network-description");
      if (!opt || !out) return;
      var solver = {};
      try { solver = JSON.parse(opt.dataset.solver || "{}"); } catch (e) { solver = {}; }
      out.textContent = opt.title + " Defaults: " + Object.keys(solver).filter(function (k) { return solver[k] !== null; })
        .map(function (k) { return k + " " + solver[k]; }).join(", ") + ".";
    };
    if (netSelect) { netSelect.addEventListener("change", function () { describe(); preview(); }); describe(); }

    var previewBox = document.getElementById("lr-preview");
    var timer = null;
    var preview = function () {
      if (!previewBox || !window.Plotly) return;
      var fields = ["epochs", "base_lr", "lr_policy", "lr_step_size", "lr_stepvalues", "lr_gamma", "lr_power"];
      var q = new URLSearchParams();
      fields.forEach(function (f) { var i = form.elements[f]; if (i && i.value !== "") q.set(f, i.value); });
      if (!q.get("lr_policy") || !q.get("base_lr")) {  /* fill the network's defaults for the preview */
        var opt = netSelect && netSelect.selectedOptions[0];
        var s = {};
        try { s = JSON.parse((opt && opt.dataset.solver) || "{}"); } catch (e) { s = {}; }
        if (!q.get("lr_policy") && s.lr_policy) q.set("lr_policy", s.lr_policy);
        if (!q.get("base_lr") && s.base_lr) q.set("base_lr", s.base_lr);
        if (!q.get("epochs") && s.epochs) q.set("epochs", s.epochs);
        if (!q.get("lr_power") && s.power) q.set("lr_power", s.power);
        if (!q.get("lr_gamma") && s.gamma) q.set("lr_gamma", s.gamma);
      }
      window.digitsSeg.fetchJSON("/models/lr-preview.json?" + q.toString()).then(function (d) {
        var yaxis = {exponentformat: "e", rangemode: "tozero"};
        var top = Math.max.apply(null, d.lr);
        /* a constant rate: show it against zero instead of plotly's ±1 around a flat line */
        if (d.lr.length && top === Math.min.apply(null, d.lr)) { yaxis.range = [0, 2 * top || 1]; yaxis.autorange = false; }
        Plotly.react(previewBox, [{x: d.epoch, y: d.lr, mode: "lines", name: "learning rate"}],
          {title: {text: "Learning rate (" + d.policy + ")", font: {size: 13}}, margin: {t: 30, r: 10, b: 40, l: 60},
           xaxis: {title: {text: "epoch"}}, yaxis: yaxis, uirevision: d.policy + top}, PLOT_CONFIG);
      }).catch(function (err) { previewBox.textContent = err.message; });
    };
    ["epochs", "base_lr", "lr_policy", "lr_step_size", "lr_stepvalues", "lr_gamma", "lr_power"].forEach(function (f) {
      var i = form.elements[f];
      if (i) i.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(preview, 300); });
      if (i) i.addEventListener("change", preview);
    });
    preview();

    /* Switching to Custom with an empty box starts from the chosen standard network's prototxt. */
    form.querySelectorAll('input[name="network_kind"]').forEach(function (r) {
      r.addEventListener("change", function () {
        var box = form.elements.custom_network, net = form.elements.network;
        if (r.value !== "custom" || !r.checked || !box || box.value.trim() || !net || !net.value) return;
        fetch("/models/standard/" + encodeURIComponent(net.value) + ".prototxt?dataset_id=" +
              encodeURIComponent(form.elements.dataset_id.value || ""))
          .then(function (resp) { return resp.ok ? resp.text() : ""; })
          .then(function (text) { if (text && !box.value.trim()) box.value = text; })
          .catch(function () {});
      });
    });

    var vbtn = document.getElementById("validate-network");
    if (vbtn) vbtn.addEventListener("click", function () {
      var errBox = document.getElementById("validate-error");
      var table = document.getElementById("layer-table");
      var summary = document.getElementById("validate-summary");
      errBox.hidden = true; table.hidden = true; summary.textContent = "checking…";
      window.digitsSeg.fetchJSON("/models/validate-network.json", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({prototxt: form.elements.custom_network.value, dataset_id: form.elements.dataset_id.value,
                              crop_size: form.elements.crop_size.value})
      }).then(function (d) {
        if (d.error) {
          summary.textContent = "";
          errBox.textContent = d.error.message + (d.error.line ? " (line " + d.error.line + ")" : "");
          errBox.hidden = false;
          return;
        }
        var body = table.querySelector("tbody");
        body.textContent = "";
        d.layers.forEach(function (r) {
          var tr = el("tr");
          [r.name, r.type, (r.shapes || []).map(function (s) { return s.join("×"); }).join(", "),
           String(r.params), r.line ? String(r.line) : ""].forEach(function (t) { tr.appendChild(el("td", t)); });
          body.appendChild(tr);
        });
        table.hidden = false;
        summary.textContent = (d.ok ? "OK: " : "Problems: ") + d.layers.length + " layers, " + d.total_params +
          " parameters at input " + d.input_shape.join("×") + (d.problems.length ? " — " + d.problems.join("; ") : "");
      }).catch(function (err) { summary.textContent = ""; errBox.textContent = err.message; errBox.hidden = false; });
    });
  }

  /* ---------------- job page ---------------- */
  var live = document.getElementById("model-live");
  if (!live) return;
  var dataEl = document.getElementById("model-data");
  var model = JSON.parse(dataEl.textContent);
  var logScale = document.getElementById("log-scale");

  function lossTraces(c) {
    return [{x: c.train.iteration, y: c.train.loss, mode: "lines", name: "train loss"},
            {x: c.val.iteration, y: c.val.loss, mode: "lines+markers", name: "val loss"}];
  }
  function accTraces(c) {
    return [{x: c.val.iteration, y: c.val.pixel_acc, mode: "lines+markers", name: "pixel accuracy"},
            {x: c.val.iteration, y: c.val.mean_iou, mode: "lines+markers", name: "mean IoU"},
            {x: c.val.iteration, y: c.val.mean_acc, mode: "lines+markers", name: "mean accuracy", visible: "legendonly"},
            {x: c.val.iteration, y: c.val.fw_iou, mode: "lines+markers", name: "fw IoU", visible: "legendonly"}];
  }
  function layout(title, ytype) {
    return {title: {text: title, font: {size: 13}}, margin: {t: 30, r: 10, b: 40, l: 55}, xaxis: {title: {text: "iteration"}},
            yaxis: {type: ytype || "linear"}, legend: {orientation: "h", y: -0.25}, uirevision: title};
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

  /* A chart with no points yet says what it waits for instead of showing meaningless 0..1 / -1..4 axes. */
  function whenEmpty(lay, xs, text) {
    if (xs && xs.length) return lay;
    lay.xaxis.visible = false;
    lay.yaxis.visible = false;
    lay.annotations = [{text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
                        font: {color: "#6b7280", size: 13}}];
    lay.uirevision += " (empty)";  /* the first points then start from fresh axes */
    return lay;
  }

  function draw(m) {
    if (!window.Plotly) return;
    var yType = logScale && logScale.checked ? "log" : "linear";
    Plotly.react("chart-loss", lossTraces(m.curves),
                 whenEmpty(layout("Loss", yType), m.curves.train.iteration, "waiting for the first iterations…"), PLOT_CONFIG);
    Plotly.react("chart-acc", accTraces(m.curves),
                 whenEmpty(layout("Validation accuracy / IoU"), m.curves.val.iteration,
                           "no validation yet: it runs at the end of each validation interval"), PLOT_CONFIG);
    var lrLayout = whenEmpty(layout("Learning rate", yType), m.curves.train.iteration, "waiting for the first iterations…");
    var lrs = m.curves.train.lr.filter(function (v) { return v !== null; });
    lrLayout.yaxis.exponentformat = "e";
    if (lrs.length && yType === "linear" && Math.max.apply(null, lrs) === Math.min.apply(null, lrs)) {
      lrLayout.yaxis.range = [0, 2 * lrs[0] || 1];  /* a constant rate: show it against zero, not ±1 */
      lrLayout.yaxis.autorange = false;
      /* the chart was first drawn empty (autoranged to 0..4 live); a new revision lets this range replace that one */
      lrLayout.uirevision = "Learning rate " + lrs[0];
    }
    Plotly.react("chart-lr", [{x: m.curves.train.iteration, y: m.curves.train.lr, mode: "lines", name: "learning rate"}],
                 lrLayout, PLOT_CONFIG);
    var conf = confusionTrace(m);
    if (conf) {
      Plotly.react("chart-confusion", conf, {margin: {t: 10, r: 10, b: 90, l: 90}, yaxis: {autorange: "reversed", title: {text: "true class"}, automargin: true},
                                             xaxis: {title: {text: "predicted class"}, automargin: true}, uirevision: "conf"}, PLOT_CONFIG);
    }
  }

  function setText(role, text) { var e = live.querySelector('[data-role="' + role + '"]'); if (e) e.textContent = text; }

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
    var strip = document.getElementById("preview-strip");
    var current = Array.prototype.map.call(strip.querySelectorAll("img"), function (i) { return i.getAttribute("src"); });
    if (m.previews.join("|") !== current.join("|")) {
      strip.textContent = "";
      m.previews.forEach(function (src, k) { var img = el("img"); img.src = src; img.alt = "validation preview " + (k + 1); strip.appendChild(img); });
    }
    var snaps = document.querySelector("#snapshot-table tbody");
    if (snaps) {
      snaps.textContent = "";
      m.snapshots.forEach(function (s) {
        var tr = el("tr");
        tr.appendChild(el("td", s.name + (s.best ? " (best val mIoU)" : "")));
        tr.appendChild(el("td", String(s.iteration))); tr.appendChild(el("td", String(s.epoch)));
        tr.appendChild(el("td", (s.size / 1048576).toFixed(2) + " MiB"));
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
  if (logScale) logScale.addEventListener("change", function () { draw(model); });
  document.addEventListener("job-status", refresh);
  /* metrics.jsonl grows faster than job.json changes: poll while the job is live */
  var poller = setInterval(function () {
    if (["done", "error", "aborted"].indexOf(live.dataset.state) >= 0) { clearInterval(poller); return; }
    refresh();
  }, 2500);
})();
