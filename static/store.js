/* Model store page: text filter, and a reload once every store has answered. */
(function () {
  "use strict";

  var filter = document.getElementById("store-filter");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.store-model"));
  var noMatch = document.getElementById("store-no-match");

  function applyFilter() {
    var words = (filter.value || "").toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.dataset.filter || "";
      var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    if (noMatch) noMatch.hidden = !(rows.length && shown === 0);
  }
  if (filter) {
    filter.addEventListener("input", applyFilter);
    applyFilter();
  }

  /* Stores still "checking": poll the JSON twin and reload once all have answered (the
     page itself never waits for a store). The filter text survives in the URL hash. */
  var statuses = document.getElementById("store-statuses");
  if (statuses && statuses.dataset.checking === "true") {
    if (filter && location.hash.length > 1) { filter.value = decodeURIComponent(location.hash.slice(1)); applyFilter(); }
    var timer = setInterval(function () {
      fetch(location.pathname.replace(/\/?$/, "") + ".json", {cache: "no-store", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (data) {
          (data.stores || []).forEach(function (s) {
            var row = statuses.querySelector('tr[data-store-url="' + CSS.escape(s.url) + '"]');
            if (!row) return;
            row.dataset.storeStatus = s.status;
            var cell = row.querySelector('[data-role="store-status"]');
            if (cell) cell.textContent = s.status;
          });
          if (!data.checking) {
            clearInterval(timer);
            if (filter && filter.value) location.hash = encodeURIComponent(filter.value);
            location.reload();
          }
        }).catch(function () {});
    }, 1500);
  } else if (filter && location.hash.length > 1) {
    filter.value = decodeURIComponent(location.hash.slice(1));
    applyFilter();
  }
})();
