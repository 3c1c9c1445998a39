/* Home page: pick 2–6 model jobs and open their comparison. */
(function () {
  "use strict";
  var form = document.querySelector('[data-role="compare-form"]');
  if (!form) return;
  var MIN = 2, MAX = 6;
  var button = form.querySelector('[data-action="compare"]');
  var hint = form.querySelector('[data-role="compare-hint"]');
  var picks = document.querySelectorAll('[data-role="compare-pick"]');

  function chosen() {
    return Array.prototype.filter.call(picks, function (p) { return p.checked; }).map(function (p) { return p.value; });
  }
  function update() {
    var ids = chosen();
    form.elements.ids.value = ids.join(",");
    button.disabled = ids.length < MIN || ids.length > MAX;
    hint.textContent = ids.length === 0 ? "tick 2–6 models to overlay their curves and settings"
      : ids.length < MIN ? "1 model ticked: tick at least one more"
      : ids.length > MAX ? ids.length + " models ticked: at most " + MAX + " can be compared"
      : ids.length + " models ticked";
  }
  picks.forEach(function (p) { p.addEventListener("change", update); });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (button.disabled) return;
    /* a readable URL (?ids=a,b) instead of the form's encoded comma */
    location.href = form.getAttribute("action") + "?ids=" + chosen().join(",");
  });
  update();  /* the browser may restore ticks on Back */
})();
