/* Model form (network choice, Validate, LR schedule preview). Uses plotly.js; the job page is model_page.js. */
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
      var plist = document.getElementById("validate-problems");
      errBox.hidden = true; table.hidden = true; plist.hidden = true; summary.textContent = "checking…";
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
        table.hidden = !d.layers.length;
        var phases = Object.keys(d.phases || {}).filter(function (k) { return d.phases[k].ok; });
        summary.textContent = (d.ok ? "OK: " : "Problems: ") + d.layers.length + " layers, " + d.total_params +
          " parameters at input " + d.input_shape.join("×") + (phases.length ? "; phases: " + phases.join(", ") : "");
        // Every problem at once, one per line (errors first), each with its fix.
        plist.textContent = "";
        d.problems.forEach(function (p) {
          var li = el("li", p);
          if (p.indexOf("warning:") !== 0) li.className = "field-error";
          plist.appendChild(li);
        });
        plist.hidden = !d.problems.length;
      }).catch(function (err) { summary.textContent = ""; errBox.textContent = err.message; errBox.hidden = false; });
    });
  }
})();
