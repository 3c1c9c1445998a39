/* Comparison page: every run's curves overlaid by epoch (plotly.js); the iteration shows on hover. */
(function () {
  "use strict";
  var dataEl = document.getElementById("compare-data");
  if (!dataEl || !window.Plotly) return;
  var data = JSON.parse(dataEl.textContent);
  /* titles on the left, the mode bar (on hover) on the right; phones have no hover: no mode bar */
  var CONFIG = {displaylogo: false, responsive: true,
                displayModeBar: window.matchMedia("(max-width: 640px)").matches ? false : "hover"};

  function trace(run, cols, y, extra) {
    var t = {x: cols.epoch, y: cols[y], customdata: cols.iteration, name: run.name, legendgroup: run.id,
             mode: cols.epoch.length > 1 ? "lines" : "markers", line: {color: run.color}, marker: {color: run.color},
             hovertemplate: "%{y:.4g}<br>epoch %{x:.2f}, iteration %{customdata}<extra>" + run.name.replace(/</g, "&lt;") + "</extra>"};
    return Object.assign(t, extra || {});
  }
  function layout(title) {
    return {title: {text: title, font: {size: 13}, x: 0.01, xanchor: "left"}, margin: {t: 40, r: 10, b: 40, l: 50},
            xaxis: {title: {text: "epoch"}, rangemode: "tozero"}, showlegend: false};
  }
  function empty(lay, traces, text) {
    if (traces.some(function (t) { return t.x && t.x.length; })) return lay;
    lay.xaxis.visible = false; lay.yaxis = {visible: false};
    lay.annotations = [{text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: {color: "#6b7280"}}];
    return lay;
  }

  var loss = [], miou = [], acc = [];
  data.runs.forEach(function (r) {
    loss.push(trace(r, r.curves.train, "loss"));
    loss.push(trace(r, r.curves.val, "loss", {line: {color: r.color, dash: "dot"}, name: r.name + " (val)",
                                              mode: "lines+markers", showlegend: false}));
    miou.push(trace(r, r.curves.val, "mean_iou", {mode: "lines+markers"}));
    acc.push(trace(r, r.curves.val, "pixel_acc", {mode: "lines+markers"}));
  });
  Plotly.newPlot("chart-cmp-loss", loss, empty(layout("Loss"), loss, "no iterations yet"), CONFIG);
  Plotly.newPlot("chart-cmp-miou", miou, empty(layout("Validation mean IoU"), miou, "no validation yet"), CONFIG);
  Plotly.newPlot("chart-cmp-acc", acc, empty(layout("Validation pixel accuracy"), acc, "no validation yet"), CONFIG);
})();
(function () {
  "use strict";
  var only = document.getElementById("only-differences");
  if (!only) return;
  only.addEventListener("change", function () {
    document.querySelectorAll("#compare-settings tbody tr").forEach(function (tr) {
      tr.hidden = only.checked && !tr.classList.contains("differs");
    });
  });
})();
