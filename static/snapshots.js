/* The snapshot chooser follows the model select (test many images): each model lists its own snapshots. */
(function () {
  "use strict";
  var select = document.querySelector('[data-role="snapshot-select"][data-snapshots]');
  var model = document.getElementById("model_id");
  if (!select || !model) return;
  var byModel = JSON.parse(select.dataset.snapshots);
  function label(s) { return s === "best" ? "best (highest val mIoU)" : (s === "weights" ? "weights" : "iteration " + s); }
  function fill() {
    var keep = select.value, names = byModel[model.value] || [];
    select.textContent = "";
    names.forEach(function (s) {
      var o = document.createElement("option");
      o.value = s; o.textContent = label(s);
      o.selected = s === keep || (names.indexOf(keep) < 0 && (s === "best" || s === "weights"));
      select.appendChild(o);
    });
  }
  model.addEventListener("change", fill);
})();
