// New-dataset form, "Import a standard layout": Detect asks the server what the folder holds, shows it
// (splits, classes with colours, how label values map, notes) and switches the form to the layout:
// the plain folder fields are filled for reference and disabled (the layout supplies the pairs).
(function () {
  "use strict";
  var form = document.getElementById("dataset-form");
  var button = document.getElementById("detect-layout");
  if (!form || !button) return;
  var box = document.getElementById("layout-result");
  var plain = document.getElementById("plain-folders");
  var clear = document.getElementById("clear-layout");
  var root = document.getElementById("layout_root");
  var layoutSelect = document.getElementById("layout");
  var detected = false;  // the select shows what auto-detect found: another folder is detected afresh
  root.addEventListener("input", function () {
    if (detected) { setValue("layout", "auto"); detected = false; }
  });
  layoutSelect.addEventListener("change", function () { detected = false; });

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function setValue(id, value) {
    var input = document.getElementById(id);
    if (input && value !== undefined && value !== null) input.value = value;
  }

  function show(body) {
    var d = body.detection, p = body.params;
    box.replaceChildren();
    box.hidden = false;
    var head = el("p", "Detected: " + d.title + " in " + d.root, "check-ok");
    head.dataset.role = "layout-title";
    box.appendChild(head);
    var counts = el("p", "Pairs: " + d.splits.train.count + " train, " + (d.splits.val ? d.splits.val.count : 0) + " val", "muted small");
    counts.dataset.role = "layout-counts";
    box.appendChild(counts);
    var notes = el("ul", undefined, "muted small");
    notes.dataset.role = "layout-notes";
    d.notes.forEach(function (n) { notes.appendChild(el("li", n)); });
    box.appendChild(notes);
    // COCO's crowd regions become 255 while rasterising: no label value is declared, yet pixels are ignored.
    var ignore = el("p", "Stored as ignore (255): " + (d.ignore_values.length ? "label value" +
      (d.ignore_values.length > 1 ? "s " : " ") + d.ignore_values.join(", ") :
      d.layout === "coco" ? "crowd regions (iscrowd) that no instance covers" : "nothing"), "small");
    ignore.dataset.role = "layout-ignore";
    box.appendChild(ignore);
    var table = el("table", undefined, "compact");
    table.id = "layout-classes";
    var hr = document.createElement("tr");
    ["#", "colour", "class"].forEach(function (h) { hr.appendChild(el("th", h)); });
    table.appendChild(el("thead")).appendChild(hr);
    var tbody = table.appendChild(el("tbody"));
    d.classes.forEach(function (c) {
      var tr = document.createElement("tr");
      var sw = el("span", undefined, "swatch");
      sw.style.background = "rgb(" + c.color.join(",") + ")";
      var td = document.createElement("td"); td.appendChild(sw);
      tr.appendChild(el("td", String(c.index))); tr.appendChild(td); tr.appendChild(el("td", c.name));
      tbody.appendChild(tr);
    });
    box.appendChild(table);
    var mapping = el("details");
    mapping.appendChild(el("summary", "How label values become classes (" + d.mapping.length + (d.mapping.length === 1 ? " rule)" : " rules)")));
    var ul = el("ul", undefined, "small");
    ul.dataset.role = "layout-mapping";
    d.mapping.forEach(function (m) { ul.appendChild(el("li", m)); });
    mapping.appendChild(ul);
    box.appendChild(mapping);
    // The form shows what the dataset will be made of; the layout, not these fields, supplies the pairs.
    setValue("images", p.images); setValue("labels", p.labels);
    setValue("val_images", p.val_images || ""); setValue("val_labels", p.val_labels || "");
    setValue("label_suffix", ""); setValue("classes_file", ""); setValue("colormap_file", "");
    // the (disabled) label fields show the layout's mapping
    setValue("ignore_values", d.ignore_values.join(", "));
    setValue("label_map", Object.keys(d.label_map).map(function (k) { return k + ":" + d.label_map[k]; }).join(" "));
    var name = document.getElementById("name");
    if (name && !name.value) name.value = p.name;
    plain.disabled = true;
    clear.hidden = false;
    if (layoutSelect.value === "auto") detected = true;  // chosen by the detection, not by the user
    setValue("layout", d.layout);
  }

  function fail(err) {
    box.replaceChildren();
    box.hidden = false;
    var p = el("p", err.message, "field-error");
    p.dataset.role = "layout-error";
    p.style.whiteSpace = "pre-line";
    box.appendChild(p);
    plain.disabled = false;
  }

  button.addEventListener("click", function () {
    var body = {layout_root: root.value, layout: document.getElementById("layout").value,
                categories: document.getElementById("categories").value};
    button.disabled = true;
    digitsSeg.fetchJSON(button.dataset.url, {method: "POST", body: JSON.stringify(body),
                                             headers: {"Content-Type": "application/json"}})
      .then(show).catch(fail).then(function () { button.disabled = false; });
  });

  clear.addEventListener("click", function () {
    root.value = "";
    setValue("layout", "auto");
    box.hidden = true;
    plain.disabled = false;
    clear.hidden = true;
  });

  if (root.value) button.click();  // a cloned layout dataset: show what it is made of again
})();
