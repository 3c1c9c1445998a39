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
    if (netSelect) { netSelect.addEventListener("change", describe); describe(); }

    var previewBox = document.getElementById("lr-preview");
    var timer = null;
    var PREVIEW_FIELDS = ["network_kind", "network", "epochs", "base_lr", "lr_policy", "lr_step_size", "lr_stepvalues",
                          "lr_gamma", "lr_power"];
    /* The server fills blank fields exactly as a submit would (a standard network's recommendation,
       else the declared defaults), so the plot is the schedule that will run for every network choice. */
    var previewSeq = 0;  /* a solver file fills several fields at once: only the newest request may draw */
    var preview = function () {
      if (!previewBox || !window.Plotly) return;
      var mine = ++previewSeq;
      var q = new URLSearchParams();
      PREVIEW_FIELDS.forEach(function (f) {
        var i = form.elements[f];  /* the radio group's RadioNodeList has the checked value too */
        if (i && i.value) q.set(f, i.value);
      });
      window.digitsSeg.fetchJSON("/models/lr-preview.json?" + q.toString()).then(function (d) {
        if (mine !== previewSeq) return;  /* an older answer arriving late would draw a stale schedule */
        var yaxis = {exponentformat: "e", rangemode: "tozero"};
        var top = Math.max.apply(null, d.lr);
        /* a constant rate: show it against zero instead of plotly's ±1 around a flat line */
        if (d.lr.length && top === Math.min.apply(null, d.lr)) { yaxis.range = [0, 2 * top || 1]; yaxis.autorange = false; }
        previewBox.dataset.baseLr = d.base_lr;
        previewBox.dataset.policy = d.policy;
        Plotly.react(previewBox, [{x: d.epoch, y: d.lr, mode: "lines", name: "learning rate"}],
          {title: {text: "Learning rate (" + d.policy + ")", font: {size: 13}}, margin: {t: 30, r: 10, b: 40, l: 60},
           xaxis: {title: {text: "epoch"}}, yaxis: yaxis, uirevision: d.policy + top}, PLOT_CONFIG);
        if (previewNote) previewNote.textContent = "";
      }).catch(function (err) {  /* keep the last plot; the field's own error says the rest on submit */
        if (mine !== previewSeq) return;
        if (previewNote) previewNote.textContent = "Preview not updated: " + err.message;
      });
    };
    var previewNote = document.getElementById("lr-preview-note");
    PREVIEW_FIELDS.forEach(function (f) {
      form.querySelectorAll('[name="' + f + '"]').forEach(function (i) {
        i.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(preview, 300); });
        i.addEventListener("change", preview);
      });
    });
    preview();

    /* Errors: every field's message under that field; a stale one goes when the field changes or on the
       next submit. Submitting through fetch keeps the form's URL, so a reload never re-posts. */
    var clearErrors = function (name) {
      form.querySelectorAll(".field-error[data-field]" + (name ? '[data-field="' + name + '"]' : "")).forEach(function (e) {
        e.remove();
      });
      if (!name) form.querySelectorAll('[data-role="form-error"]').forEach(function (e) { e.remove(); });
    };
    var showErrors = function (errors) {
      var top = form.querySelector('[data-role="form-errors"]');
      errors.forEach(function (e) {
        var p = el("p", e.message);
        p.className = "field-error";
        var box = e.field && form.querySelector('[data-field-box="' + e.field + '"]');
        if (box && box.offsetParent === null && box.closest(".net-panel")) box = null;  /* a hidden panel */
        if (box) { p.dataset.field = e.field; box.appendChild(p); } else { p.dataset.role = "form-error"; top.appendChild(p); }
      });
      var first = form.querySelector(".field-error");
      if (first && first.scrollIntoView) first.scrollIntoView({block: "center"});
    };
    form.addEventListener("input", function (ev) { if (ev.target.name) clearErrors(ev.target.name); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors();
      var button = document.getElementById("train-button");
      if (button) button.disabled = true;
      window.digitsSeg.fetchJSON(form.action, {method: "POST", body: new FormData(form)}).then(function (d) {
        window.location.href = d.jobs && d.jobs.length > 1 ? "/" : d.url;
      }).catch(function (err) {
        if (button) button.disabled = false;
        showErrors(err.errors && err.errors.length ? err.errors : [{field: err.field, message: err.message}]);
      });
    });

    /* A GPU device with no GPU worker registered: say so before the job waits in the queue silently. */
    var device = form.elements.device;
    var deviceWarning = document.getElementById("device-warning");
    var warnDevice = function () {
      if (!device || !deviceWarning) return;
      var gpu = /^gpu/.test(device.value), workers = Number(device.dataset.workers || 0);
      var text = "";
      if (!workers) text = "No worker is running: the job waits in the queue until one starts.";
      else if (gpu && !Number(device.dataset.gpuWorkers || 0))
        text = "This server has no GPU worker: a job on a GPU waits in the queue until one joins. Choose any or CPU to start now.";
      deviceWarning.textContent = text;
      deviceWarning.hidden = !text;
    };
    if (device) { device.addEventListener("change", warnDevice); warnDevice(); }

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

    // A Caffe solver file fills the solver fields; the server maps max_iter to epochs for this dataset.
    var sfile = document.getElementById("solver-file");
    var stext = document.getElementById("solver-text");
    if (sfile) sfile.addEventListener("change", function () {
      if (!sfile.files.length) return;
      var reader = new FileReader();
      reader.onload = function () { stext.value = reader.result; };
      reader.readAsText(sfile.files[0]);
    });
    var sbtn = document.getElementById("solver-fill");
    if (sbtn) sbtn.addEventListener("click", function () {
      var serr = document.getElementById("solver-error");
      var mapped = document.getElementById("solver-mapped");
      serr.hidden = true; mapped.hidden = true; mapped.textContent = "";
      window.digitsSeg.fetchJSON("/models/solver-fields.json", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({solver: stext.value, dataset_id: form.elements.dataset_id.value,
                              batch_size: form.elements.batch_size.value, crop_size: form.elements.crop_size.value,
                              network_kind: (form.querySelector('input[name="network_kind"]:checked') || {}).value,
                              custom_network: form.elements.custom_network ? form.elements.custom_network.value : "",
                              pretrained_job: form.elements.pretrained_job ? form.elements.pretrained_job.value : ""})
      }).then(function (d) {
        Object.keys(d.fields).forEach(function (k) {
          var input = form.elements[k];
          if (!input) return;
          var v = d.fields[k];
          input.value = Array.isArray(v) ? v.join(",") : String(v);
          input.dispatchEvent(new Event("change", {bubbles: true}));
        });
        d.mapped.forEach(function (line) { mapped.appendChild(el("li", line)); });
        mapped.hidden = !d.mapped.length;
      }).catch(function (err) { serr.textContent = err.message; serr.hidden = false; });
    });

    var vbtn = document.getElementById("validate-network");
    if (vbtn) vbtn.addEventListener("click", function () {
      clearErrors("custom_network");  /* a refused submit's message under the box is stale once validated again */
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
           Number(r.params).toLocaleString("en-US") + (d.input.assumed && r.input_dependent ? (r.input_dependent.indexOf("height") >= 0 ? "*" : "^") : ""),
           r.line ? String(r.line) : ""].forEach(function (t) { tr.appendChild(el("td", t)); });
          body.appendChild(tr);
        });
        table.hidden = false;
        table.hidden = !d.layers.length;
        var phases = Object.keys(d.phases || {}).filter(function (k) { return d.phases[k].ok; });
        var errorCount = d.problems.filter(function (p) { return p.indexOf("warning:") !== 0; }).length;
        summary.textContent = !d.layers.length ? "Not usable: " + errorCount + " problem(s), listed below" :
          (d.ok ? "OK: " : "Problems: ") + d.layers.length + " layers, " + Number(d.total_params).toLocaleString("en-US") +
          " parameters at " + (d.input.assumed ? "the ASSUMED input " : "input ") + d.input_shape.join("×") +
          " (" + d.input.reason + ")" + (d.total_params_note.indexOf("not this network") >= 0 ?
            ": not this network's own count (* depends on the input height and width); choose the dataset" : "") +
          (phases.length ? "; phases: " + phases.join(", ") : "");
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
