/* Overlay viewer: input image + predicted / ground-truth class ids drawn on a canvas.
 *
 * Everything after loading happens here in the browser (no server round trip): opacity,
 * prediction / ground truth / error map / input modes, flip (alternate) mode, per-class
 * show/hide, contours, hover class names. Class ids come as greyscale PNGs (pixel value =
 * class id, 255 = ignore) so colours, legend shares and error maps are computed locally.
 *
 * Markup: <section data-viewer='{"image": url, "pred": url, "gt": url|null, "classes": [...],
 * "colormap": [[r,g,b]...], "downloads": {...}}'> with the controls of
 * templates/inference/_viewer.html. window.digitsSegViewer.mount(el, config) for dynamic use.
 */
(function () {
  "use strict";

  var IGNORE = 255;
  var FLIP_MS = 900;

  function loadPixels(src) {
    return new Promise(function (resolve, reject) {
      if (!src) { resolve(null); return; }
      var img = new Image();
      img.onload = function () {
        var c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        var ctx = c.getContext("2d", {willReadFrequently: true});
        ctx.drawImage(img, 0, 0);
        resolve(ctx.getImageData(0, 0, c.width, c.height));
      };
      img.onerror = function () { reject(new Error("cannot load " + String(src).slice(0, 80))); };
      img.src = src;
    });
  }

  function idsOf(imageData) {
    if (!imageData) return null;
    var n = imageData.width * imageData.height, ids = new Uint8Array(n), d = imageData.data;
    for (var i = 0; i < n; i++) ids[i] = d[4 * i];
    return ids;
  }

  function edgesOf(ids, w, h) {
    var e = new Uint8Array(w * h);
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var i = y * w + x, c = ids[i];
        if ((x + 1 < w && ids[i + 1] !== c) || (y + 1 < h && ids[i + w] !== c)) {
          e[i] = 1;
          if (x + 1 < w && ids[i + 1] !== c) e[i + 1] = 1;
          if (y + 1 < h && ids[i + w] !== c) e[i + w] = 1;
        }
      }
    }
    return e;
  }

  function counts(ids) {
    var c = new Array(256).fill(0);
    if (ids) for (var i = 0; i < ids.length; i++) c[ids[i]]++;
    return c;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function Viewer(root, config) {
    this.root = root;
    this.cfg = config;
    this.q = function (role) { return root.querySelector('[data-role="' + role + '"]'); };
    this.canvas = this.q("canvas");
    this.ctx = this.canvas.getContext("2d", {willReadFrequently: true});
    this.hidden = {};
    this.mode = "pred";
    this.flipIndex = 0;
    this.flipTimer = null;
    root.viewer = this;
  }

  Viewer.prototype.load = function () {
    var self = this;
    self.root.dataset.ready = "loading";
    return Promise.all([loadPixels(self.cfg.image), loadPixels(self.cfg.pred), loadPixels(self.cfg.gt)])
      .then(function (px) {
        self.image = px[0];
        self.w = px[0].width; self.h = px[0].height;
        self.pred = idsOf(px[1]);
        self.gt = idsOf(px[2]);
        self.predEdges = edgesOf(self.pred, self.w, self.h);
        self.gtEdges = self.gt ? edgesOf(self.gt, self.w, self.h) : null;
        self.predCounts = counts(self.pred);
        self.gtCounts = self.gt ? counts(self.gt) : null;
        self.canvas.width = self.w; self.canvas.height = self.h;
        self.out = self.ctx.createImageData(self.w, self.h);
        self.grey = new Uint8ClampedArray(self.w * self.h);
        var d = self.image.data;
        for (var i = 0; i < self.grey.length; i++) self.grey[i] = 0.299 * d[4 * i] + 0.587 * d[4 * i + 1] + 0.114 * d[4 * i + 2];
        self.bind();
        self.legend();
        self.render();
        self.root.dataset.ready = "yes";
      })
      .catch(function (err) {
        self.root.dataset.ready = "error";
        var m = self.q("message");
        if (m) m.textContent = err.message;
      });
  };

  Viewer.prototype.bind = function () {
    var self = this, mode = self.q("mode"), op = self.q("opacity"), contour = self.q("contour"), flip = self.q("flip");
    if (!self.gt) {
      mode.querySelectorAll('option[value="gt"], option[value="error"]').forEach(function (o) { o.disabled = true; });
    }
    mode.addEventListener("change", function () { self.mode = mode.value; self.render(); });
    op.addEventListener("input", function () { self.render(); });
    contour.addEventListener("change", function () { self.render(); });
    flip.addEventListener("change", function () {
      if (flip.checked) {
        self.flipIndex = 0;
        self.flipTimer = setInterval(function () { self.flipIndex++; self.render(); }, FLIP_MS);
      } else {
        clearInterval(self.flipTimer); self.flipTimer = null;
      }
      self.render();
    });
    self.canvas.addEventListener("mousemove", function (e) { self.hover(e); });
    self.canvas.addEventListener("mouseleave", function () { var h = self.q("hover"); h.textContent = ""; h.hidden = true; });
  };

  Viewer.prototype.className = function (id) {
    if (id === IGNORE) return "ignore";
    return this.cfg.classes[id] || ("class " + id);
  };

  Viewer.prototype.color = function (id) {
    return this.cfg.colormap[id] || [0, 0, 0];
  };

  /* Which layer is drawn now: the mode, or the flip sequence input → prediction → ground truth. */
  Viewer.prototype.currentMode = function () {
    if (!this.flipTimer) return this.mode;
    var seq = this.gt ? ["input", "pred", "gt"] : ["input", "pred"];
    return seq[this.flipIndex % seq.length];
  };

  Viewer.prototype.render = function () {
    var mode = this.currentMode(), alpha = Number(this.q("opacity").value) / 100;
    var contour = this.q("contour").checked, src = this.image.data, out = this.out.data, n = this.w * this.h;
    var ids = mode === "gt" ? this.gt : this.pred, edges = mode === "gt" ? this.gtEdges : this.predEdges;
    var cmap = this.cfg.colormap, hidden = this.hidden, i, c, a, col;
    this.q("opacity-value").textContent = Math.round(alpha * 100) + "%";
    this.root.dataset.mode = mode;
    for (i = 0; i < n; i++) {
      var r = src[4 * i], g = src[4 * i + 1], b = src[4 * i + 2];
      if (mode === "error") {
        var grey = this.grey[i];
        r = g = b = grey;
        if (this.gt[i] !== IGNORE && this.pred[i] !== this.gt[i] && !hidden[this.gt[i]]) {
          r = grey * (1 - alpha) + 255 * alpha; g = grey * (1 - alpha); b = grey * (1 - alpha);
        }
      } else if (mode !== "input") {
        c = ids[i];
        if (c !== IGNORE && !hidden[c] && (!contour || edges[i])) {
          col = cmap[c] || [0, 0, 0];
          a = contour ? 1 : alpha;
          r = r * (1 - a) + col[0] * a; g = g * (1 - a) + col[1] * a; b = b * (1 - a) + col[2] * a;
        } else if (c === IGNORE && !contour) {
          /* ignore (255): grey diagonal stripes, never a class colour */
          var hatch = ((i % this.w) + Math.floor(i / this.w)) % 8 < 4 ? 96 : 176;
          r = r * (1 - alpha) + hatch * alpha; g = g * (1 - alpha) + hatch * alpha; b = b * (1 - alpha) + hatch * alpha;
        }
      }
      out[4 * i] = r; out[4 * i + 1] = g; out[4 * i + 2] = b; out[4 * i + 3] = 255;
    }
    this.ctx.putImageData(this.out, 0, 0);
    var label = this.q("mode-label");
    if (label) label.textContent = {input: "input", pred: "prediction", gt: "ground truth", error: "error map"}[mode];
    this.updateCutout();
  };

  Viewer.prototype.legend = function () {
    var self = this, box = self.q("legend"), total = 0, gtTotal = 0, i;
    box.textContent = "";
    for (i = 0; i < 255; i++) { total += self.predCounts[i]; if (self.gtCounts) gtTotal += self.gtCounts[i]; }
    var head = el("tr");
    ["", "", "class", "predicted", self.gt ? "ground truth" : ""].forEach(function (t) { head.appendChild(el("th", "", t)); });
    var table = el("table", "compact legend-table"), tbody = el("tbody");
    table.appendChild(el("thead")).appendChild(head);
    table.appendChild(tbody);
    for (i = 0; i < 255; i++) {
      var p = self.predCounts[i], g = self.gtCounts ? self.gtCounts[i] : 0;
      if (!p && !g) continue;
      var row = el("tr"), cb = el("input"), sw = el("span", "swatch"), col = self.color(i);
      row.dataset.classId = String(i);
      cb.type = "checkbox"; cb.checked = true; cb.dataset.classToggle = String(i);
      cb.title = "show / hide " + self.className(i);
      cb.addEventListener("change", (function (id, box) {
        return function () { if (box.checked) delete self.hidden[id]; else self.hidden[id] = true; self.render(); };
      })(i, cb));
      sw.style.background = "rgb(" + col[0] + "," + col[1] + "," + col[2] + ")";
      var td = el("td"); td.appendChild(cb); row.appendChild(td);
      td = el("td"); td.appendChild(sw); row.appendChild(td);
      row.appendChild(el("td", "", self.className(i)));
      row.appendChild(el("td", "share", total ? (100 * p / total).toFixed(1) + "%" : "–"));
      row.appendChild(el("td", "share muted", self.gt ? (gtTotal ? (100 * g / gtTotal).toFixed(1) + "%" : "–") : ""));
      tbody.appendChild(row);
    }
    box.appendChild(table);
  };

  Viewer.prototype.hover = function (e) {
    var rect = this.canvas.getBoundingClientRect();
    var x = Math.floor((e.clientX - rect.left) * this.w / rect.width);
    var y = Math.floor((e.clientY - rect.top) * this.h / rect.height);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    var i = y * this.w + x, text = "(" + x + ", " + y + ") predicted: " + this.className(this.pred[i]);
    if (this.gt) text += " · ground truth: " + this.className(this.gt[i]);
    var tip = this.q("hover");
    tip.textContent = text;
    tip.hidden = false;
    /* next to the cursor (a line under a tall image was off-screen); on the cursor's left near the right edge */
    var stage = tip.offsetParent ? tip.offsetParent.getBoundingClientRect() : rect;
    var left = e.clientX - stage.left + 14, top = e.clientY - stage.top + 16;
    if (left + tip.offsetWidth > stage.width) left = Math.max(0, e.clientX - stage.left - tip.offsetWidth - 10);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  };

  /* The cut-out download keeps the classes currently shown. */
  Viewer.prototype.updateCutout = function () {
    var link = this.q("cutout-link");
    if (!link || !link.dataset.base) return;
    var keep = [];
    for (var i = 0; i < 255; i++) if (this.predCounts[i] && !this.hidden[i]) keep.push(i);
    link.href = link.dataset.base + (link.dataset.base.indexOf("?") < 0 ? "?" : "&") + "download=1&keep=" + keep.join(",");
  };

  function mount(root, config) {
    var v = new Viewer(root, config);
    v.load();
    return v;
  }

  window.digitsSegViewer = {mount: mount};
  document.querySelectorAll("[data-viewer]").forEach(function (root) {
    if (root.dataset.viewer) mount(root, JSON.parse(root.dataset.viewer));
  });
})();
