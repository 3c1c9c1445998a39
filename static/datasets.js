// New-dataset form: path autocompletion inside the data roots, and the "Check folders" report.
(function () {
  "use strict";
  var script = document.getElementById("datasets-js");
  var form = document.getElementById("dataset-form");
  if (!form || !script) return;
  var completeUrl = script.dataset.completeUrl;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  /* Pillow's image modes as a person says them, and counts with thousands separators */
  var MODE_WORDS = {P: "palette PNG", L: "greyscale index PNG", RGB: "RGB colour PNG", RGBA: "RGBA PNG",
                    "I;16": "16-bit greyscale PNG", I: "32-bit greyscale", "1": "1-bit black/white", LA: "greyscale + alpha"};
  function modes(counts) {
    return Object.keys(counts).map(function (m) { return (MODE_WORDS[m] || m) + " (" + num(counts[m]) + ")"; }).join(", ");
  }
  function num(n) { return Number(n || 0).toLocaleString("en-US"); }
  /* messages quote names in `backticks` (for the log): show them as code, as text nodes */
  function quoted(text, cls) {
    var li = el("li", undefined, cls), parts = String(text).split("`");
    if (parts.length % 2 === 0) { li.textContent = text; return li; }
    parts.forEach(function (p, i) { if (p) li.appendChild(i % 2 ? el("code", p) : document.createTextNode(p)); });
    return li;
  }

  var timers = {};
  form.querySelectorAll("input[data-complete]").forEach(function (input) {
    var list = document.getElementById(input.getAttribute("list"));
    input.addEventListener("input", function () {
      clearTimeout(timers[input.id]);
      timers[input.id] = setTimeout(function () {
        var url = completeUrl + "?prefix=" + encodeURIComponent(input.value) + (input.dataset.complete === "1" ? "&dirs=1" : "");
        digitsSeg.fetchJSON(url).then(function (body) {
          list.replaceChildren();
          body.entries.forEach(function (p) { var o = document.createElement("option"); o.value = p; list.appendChild(o); });
        }).catch(function () {});
      }, 150);
    });
  });

  // A server-side error under a field describes the value that was submitted; once the user edits
  // that field (or re-checks the folders) the message is stale and would contradict a clean report.
  form.querySelectorAll("input, select").forEach(function (input) {
    input.addEventListener("input", function () {
      form.querySelectorAll('[data-field-error="' + input.name + '"], [data-role="form-error"]').forEach(function (p) { p.remove(); });
    });
  });

  function formBody() {
    var body = {};
    new FormData(form).forEach(function (value, key) {
      if (key !== "csrf_token" && key !== "archive" && key !== "check_id" && value !== "") body[key] = value;
    });
    return body;
  }

  function showReport(report) {
    var box = document.getElementById("check-report");
    box.replaceChildren();
    box.hidden = false;
    var s = report.summary;
    var head = el("p", report.ok ? "No problems found." : report.errors.length + " problem(s) found.", report.ok ? "check-ok" : "check-bad");
    head.dataset.role = "check-result";
    box.appendChild(head);
    if (s && s.pairs) {
      box.appendChild(el("p", "Pairs: " + num(s.pairs.train) + " train, " + num(s.pairs.val) + " val · sizes: " +
        Object.keys(s.sizes).join(", ") + " · labels: " + modes(s.label_modes) +
        (s.binary_mask ? " · 0/255 binary masks → classes 0/1" : "") +
        (s.label_suffix ? " · label suffix " + s.label_suffix : ""), "muted small"));
      var table = el("table", undefined, "compact");
      var hr = document.createElement("tr");
      ["#", "colour", "class", "pixels", "images with it"].forEach(function (h) { hr.appendChild(el("th", h)); });
      table.appendChild(el("thead")).appendChild(hr);
      var tbody = table.appendChild(el("tbody"));
      s.classes.forEach(function (c) {
        var tr = document.createElement("tr");
        var sw = el("span", undefined, "swatch");
        sw.style.background = "rgb(" + c.color.join(",") + ")";
        var td = document.createElement("td"); td.appendChild(sw);
        tr.appendChild(el("td", String(c.index))); tr.appendChild(td); tr.appendChild(el("td", c.name));
        tr.appendChild(el("td", num(c.pixels) + " px")); tr.appendChild(el("td", num(c.images) + " images"));
        tbody.appendChild(tr);
      });
      var ig = document.createElement("tr");
      ig.dataset.class = "ignore";
      var hs = el("span", undefined, "swatch hatched"), htd = document.createElement("td");
      htd.appendChild(hs);
      ig.appendChild(el("td", "255")); ig.appendChild(htd); ig.appendChild(el("td", "ignore (not learnt)"));
      ig.appendChild(el("td", num(s.ignore_pixels) + " px (" + (100 * (s.ignore_share || 0)).toFixed(1) + "%)"));
      ig.appendChild(el("td", ""));
      tbody.appendChild(ig);
      if (s.refused_pixels) {  /* not ignore: these colours stop creation until they are mapped or declared */
        var rf = document.createElement("tr");
        rf.dataset.class = "refused";
        rf.appendChild(el("td", "–")); rf.appendChild(el("td", ""));
        rf.appendChild(el("td", "colours in no class (refused, see below)", "field-error"));
        rf.appendChild(el("td", num(s.refused_pixels) + " px (" + (100 * (s.refused_share || 0)).toFixed(1) + "%)"));
        rf.appendChild(el("td", ""));
        tbody.appendChild(rf);
      }
      box.appendChild(table);
      if (s.mapping && s.mapping.text.length) {
        var mp = el("details", undefined, "mapping");
        mp.open = s.mapping.text.length <= 12;
        mp.dataset.role = "mapping";
        mp.appendChild(el("summary", "How labels are read"));
        var ml = mp.appendChild(el("ul"));
        s.mapping.text.forEach(function (line) { ml.appendChild(el("li", line)); });
        box.appendChild(mp);
      }
      if (s.sixteen_bit) {
        var sb = el("p", "16-bit images: " + s.sixteen_bit.text, "muted small");
        sb.dataset.role = "sixteen-bit";
        box.appendChild(sb);
      }
      if (s.ignore_choices) showIgnoreChoices(box, s.ignore_choices);
    }
    [["errors", "field-error"], ["warnings", "muted"]].forEach(function (kind) {
      if (!report[kind[0]].length) return;
      var ul = el("ul");
      ul.dataset.role = kind[0];
      report[kind[0]].forEach(function (e) {
        var li = quoted(e.message, kind[1]);
        if (e.files.length) {
          li.appendChild(el("span", e.files.join("  ·  ") + (e.count > e.files.length ? "  … and " + (e.count - e.files.length) + " more" : ""), "files"));
        }
        ul.appendChild(li);
      });
      box.appendChild(ul);
    });
  }

  // Values and colours found by the check, offered as ignore: ticking one edits the ignore field,
  // so what is declared is always what the field says (and what a re-check or create uses).
  function listOf(input, sep) {
    return input.value.split(sep).map(function (x) { return x.trim(); }).filter(Boolean);
  }

  function choice(box, input, sep, token, text, suggested) {
    var label = el("label"), cb = document.createElement("input");
    cb.type = "checkbox";
    cb.value = token;
    cb.checked = listOf(input, sep).indexOf(token) >= 0;
    cb.addEventListener("change", function () {
      var items = listOf(input, sep).filter(function (x) { return x !== token; });
      if (cb.checked) items.push(token);
      input.value = items.join(sep === ";" ? "; " : ", ");
    });
    label.appendChild(cb);
    label.appendChild(document.createTextNode(" " + text + (suggested ? " (named like void)" : "")));
    box.appendChild(label);
  }

  function showIgnoreChoices(box, choices) {
    if (!choices.values.length && !choices.colors.length) return;
    var wrap = el("div", undefined, "ignore-choices");
    wrap.dataset.role = "ignore-choices";
    wrap.appendChild(el("p", "Declare as ignore (stored as 255, not learnt): tick to fill the ignore fields, then check again.", "small"));
    var values = document.getElementById("ignore_values"), colors = document.getElementById("ignore_colors");
    choices.values.forEach(function (c) { choice(wrap, values, ",", String(c.value), "value " + c.value, c.suggested); });
    choices.colors.forEach(function (c) {
      var token = c.color.join(",");
      choice(wrap, colors, ";", token, "colour (" + token + ")" + (c.name ? " " + c.name : "") +
             (c.pixels ? ", " + c.pixels + " px not in the colour map" : ""), c.suggested);
    });
    box.appendChild(wrap);
  }

  // The check runs in the background on the server (a big folder takes minutes): start it, poll
  // its progress into the bar, show the report when it is done.
  var button = document.getElementById("check-folders");
  var status = document.getElementById("check-status");
  var bar = document.getElementById("check-progress");
  var current = null, currentUrl = null;

  function showProgress(check) {
    bar.hidden = false;
    bar.querySelector(".bar").style.width = (100 * (check.progress || 0)).toFixed(1) + "%";
    status.textContent = (check.message || "checking every pair…") + (check.eta ? " · ETA " + check.eta : "");
  }

  function finish() {
    bar.hidden = true;
    status.textContent = "";
    button.disabled = false;
    current = null;
  }

  function fail(err) {
    finish();
    showReport({ok: false, errors: [{message: err.message, files: [], count: 0}], warnings: [], summary: null});
  }

  function poll(check) {
    if (current !== check.id) return;
    digitsSeg.fetchJSON(check.url).then(function (s) {
      if (current !== check.id) return;
      if (s.state === "running") {
        showProgress(s);
        setTimeout(function () { poll(check); }, 400);
      } else if (s.state === "done") {
        finish();
        showReport(s.report);
        // a passed check of exactly these fields spares Create from checking every pair again
        document.getElementById("check_id").value = s.report.ok ? check.id : "";
      } else {
        fail(new Error((s.error && s.error.message) || "the check was cancelled"));
      }
    }).catch(function (err) { if (current === check.id) fail(err); });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    form.querySelectorAll("[data-field-error], [data-role='form-error']").forEach(function (p) { p.remove(); });
    document.getElementById("check-report").hidden = true;
    showProgress({progress: 0, message: "listing the folders…"});
    digitsSeg.fetchJSON(button.dataset.url, {method: "POST", body: JSON.stringify(formBody()),
                                            headers: {"Content-Type": "application/json"}})
      .then(function (check) { current = check.id; currentUrl = check.url; poll(check); })
      .catch(fail);
  });

  // Any edit makes the last check stale: Create then checks the folders itself.
  ["input", "change"].forEach(function (type) {
    form.addEventListener(type, function (e) { if (e.target.name !== "check_id") document.getElementById("check_id").value = ""; });
  });

  // Leaving the page cancels a running check (the server also stops checks nobody polls).
  window.addEventListener("pagehide", function () {
    if (current) fetch(currentUrl, {method: "DELETE", keepalive: true, headers: {"X-CSRF-Token": digitsSeg.csrfToken()}});
  });
})();
