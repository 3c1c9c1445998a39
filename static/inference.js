/* Test one image: submit the form as multipart to infer.json and show the answer in the viewer. */
(function () {
  "use strict";
  var form = document.getElementById("infer-form");
  if (!form) return;
  var pristine = document.getElementById("viewer").cloneNode(true);
  var errorBox = form.querySelector('[data-role="form-error"]');
  var timing = form.querySelector('[data-role="timing"]');
  var button = document.getElementById("infer-submit");

  function viewerConfig(body) {
    var urls = body.urls || {};
    function src(key, mime, urlKey) { return body[key] ? "data:" + mime + ";base64," + body[key] : (urls[urlKey] || null); }
    var downloads = {};
    ["mask", "color", "overlay", "cutout", "error", "contour", "gt"].forEach(function (k) { if (urls[k]) downloads[k] = urls[k]; });
    return {image: src("image_jpeg", "image/jpeg", "input"), pred: src("ids_png", "image/png", "ids"),
            gt: src("gt_ids_png", "image/png", "gt_ids"), classes: body.classes, colormap: body.colormap,
            width: body.width, height: body.height, downloads: downloads};
  }

  function setLink(root, role, url, extra) {
    var a = root.querySelector('[data-role="' + role + '"]');
    if (!a) return;
    if (!url) { a.parentNode.hidden = true; return; }
    a.parentNode.hidden = false;
    if (role === "cutout-link") { a.dataset.base = url; a.href = url; } else { a.href = url + (extra || ""); }
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    errorBox.textContent = "";
    button.disabled = true;
    timing.textContent = "predicting…";
    var fd = new FormData(form);
    var file = form.querySelector('input[type="file"]');
    if (file && !file.files.length) fd.delete("image");
    window.digitsSeg.fetchJSON(form.dataset.jsonUrl, {method: "POST", body: fd}).then(function (body) {
      var cfg = viewerConfig(body);
      var current = document.getElementById("viewer");
      var fresh = pristine.cloneNode(true);
      fresh.hidden = false;
      current.parentNode.replaceChild(fresh, current);
      setLink(fresh, "mask-link", cfg.downloads.mask, "?download=1");
      setLink(fresh, "color-link", cfg.downloads.color, "?download=1");
      setLink(fresh, "overlay-link", cfg.downloads.overlay, "?download=1");
      setLink(fresh, "cutout-link", cfg.downloads.cutout);
      setLink(fresh, "error-link", cfg.downloads.error, "?download=1");
      window.digitsSegViewer.mount(fresh, cfg);
      var t = body.timing || {};
      timing.textContent = (body.source ? body.source + " · " : "") +  /* which file: val[k] names its record */
        body.width + "×" + body.height + " · " + body.weights + " · server " +
        (t.server_s || 0).toFixed(2) + " s (forward " + (t.predict_s || 0).toFixed(2) + " s" +
        (t.engine ? ", " + (t.engine === "onnxruntime" ? "ONNX Runtime" : "PyTorch") : "") + ")" +
        (body.fit ? " · " + body.fit.text : "") +
        (body.scores ? " · pixel acc " + (100 * body.scores.pixel_acc).toFixed(1) + "%, mean IoU " +
         (100 * (body.scores.mean_iou || 0)).toFixed(1) + "%" : "");
    }).catch(function (err) {
      errorBox.textContent = err.message;
      timing.textContent = "";
    }).finally(function () { button.disabled = false; });
  });
})();
