/* Shared page behaviour: tabs, confirmations, live job status (batched polling). */
(function () {
  "use strict";

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  window.digitsSeg = window.digitsSeg || {};
  window.digitsSeg.csrfToken = csrfToken;

  /* A form shown again after a refused POST (its errors under the fields) takes back its own URL, so
     reloading the page opens the form instead of re-posting the submission. */
  document.querySelectorAll("form[data-form-url]").forEach(function (f) {
    var target = f.dataset.formUrl;
    if (target && location.pathname !== target && history.replaceState) {
      history.replaceState(null, "", target + location.search + location.hash);
    }
  });

  /* fetch JSON with the CSRF header; rejects with the server's error message */
  window.digitsSeg.fetchJSON = function (url, options) {
    options = options || {};
    options.headers = Object.assign({"X-CSRF-Token": csrfToken(), "Accept": "application/json"}, options.headers || {});
    return fetch(url, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var err = new Error((body.error && body.error.message) || ("HTTP " + r.status));
          err.field = body.error && body.error.field;
          err.errors = (body.error && body.error.errors) || [];
          throw err;
        }
        return body;
      });
    });
  };

  document.querySelectorAll(".tabs .tab").forEach(function (tab) {
    tab.addEventListener("click", function () {
      document.querySelectorAll(".tabs .tab").forEach(function (t) { t.classList.toggle("active", t === tab); });
      document.querySelectorAll(".tab-panel").forEach(function (p) { p.hidden = p.dataset.panel !== tab.dataset.tab; });
      history.replaceState(null, "", "#" + tab.dataset.tab);
    });
  });
  if (location.hash) {
    var t = document.querySelector('.tabs .tab[data-tab="' + location.hash.slice(1) + '"]');
    if (t) t.click();
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) { if (!confirm(f.dataset.confirm)) e.preventDefault(); });
  });
  /* An action the server would refuse (deleting a dataset that models use) says why at once, on this page */
  document.querySelectorAll("form[data-refuse]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var panel = f.closest(".job-status");
      var box = panel && panel.querySelector('[data-role="refusal"]');
      if (box) { box.textContent = f.dataset.refuse; box.hidden = false; } else { alert(f.dataset.refuse); }
    });
  });

  function formatEta(s) { return s || ""; }

  /* "3m 05s ago" as the server writes it (helpers.format_eta), kept current while the page stays open */
  function formatAge(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + two(Math.floor((s % 3600) / 60)) + "m";
    return Math.floor(s / 86400) + "d " + two(Math.floor((s % 86400) / 3600)) + "h";
  }
  function refreshAges() {
    document.querySelectorAll("time[data-age]").forEach(function (t) {
      var when = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(when)) t.textContent = formatAge((Date.now() - when) / 1000) + " ago";
    });
  }
  if (document.querySelector("time[data-age]")) setInterval(refreshAges, 10000);

  function apply(el, s) {
    var previous = el.dataset.state;
    el.dataset.state = s.state;
    var badge = el.querySelector('[data-role="badge"]');
    if (badge) { badge.textContent = s.state; badge.className = "badge state-" + s.state; }
    var bar = el.querySelector('[data-role="progress"] .bar');
    var frac = (s.progress && s.progress.fraction) || 0;
    if (bar) bar.style.width = (100 * frac).toFixed(1) + "%";
    var text = el.querySelector('[data-role="progress-text"]');
    if (text) {
      text.textContent = s.state === "running" ? Math.round(100 * frac) + "%" + (s.eta ? " · ETA " + formatEta(s.eta) : "")
        : (s.status_note || "");
    }
    var msg = el.querySelector('[data-role="message"]');
    if (msg) msg.textContent = (s.progress && s.progress.message) || "";
    var errBox = el.querySelector('[data-role="error"]');
    if (errBox) {
      errBox.hidden = !s.error;
      var em = errBox.querySelector('[data-role="error-message"]');
      if (em && s.error) em.textContent = s.error.message;
    }
    document.dispatchEvent(new CustomEvent("job-status", {detail: s}));
    var finished = ["done", "error", "aborted"].indexOf(s.state) >= 0;
    if (finished) {
      /* nothing left to abort: drop the button before the reload below brings the final actions */
      el.querySelectorAll('[data-action="abort"]').forEach(function (b) { (b.form || b).hidden = true; });
    }
    /* the job page reloads once when the job finishes so results and actions appear */
    if (finished && previous && previous !== s.state && el.classList.contains("job-status")) {
      setTimeout(function () { location.reload(); }, 600);
    }
  }

  /* The log pane follows new lines while the user is at its end; scrolling up stops following
     (so a line can be read while the job runs), scrolling back to the end resumes it. */
  var logPane = document.querySelector('[data-role="log"]');
  function atEnd(pre) { return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8; }
  if (logPane) {
    logPane.dataset.follow = "1";
    logPane.scrollTop = logPane.scrollHeight;
    logPane.addEventListener("scroll", function () { logPane.dataset.follow = atEnd(logPane) ? "1" : "0"; });
  }
  function refreshLog() {
    var pre = logPane;
    if (!pre || !pre.dataset.logUrl) return;
    fetch(pre.dataset.logUrl, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (t) {
      var text = t.length > 100000 ? t.slice(-100000) : t;
      if (text === pre.textContent) return;
      var follow = pre.dataset.follow !== "0";
      var kept = pre.scrollTop;
      pre.textContent = text;
      pre.scrollTop = follow ? pre.scrollHeight : kept;
    }).catch(function () {});
  }

  /* Live status: one batched poll of /jobs/status.json for every live element of the page.
     An event stream per job stays open, holding a server thread, and browsers allow only six
     connections per host: a few open job pages would stop every other page from loading. */
  var FINISHED = ["done", "error", "aborted"];
  function watchAll(groups, interval) {
    var ids = Object.keys(groups), seen = {};
    if (!ids.length) return;
    function tick() {
      fetch("/jobs/status.json?ids=" + ids.map(encodeURIComponent).join(","), {cache: "no-store"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (body) {
            ids = ids.filter(function (id) {
              var s = body.jobs[id];
              if (!s) return false;
              var key = JSON.stringify(s);
              if (key !== seen[id]) {
                seen[id] = key;
                groups[id].forEach(function (el) { apply(el, s); });
                if (groups[id].some(function (el) { return el.classList.contains("job-status"); })) refreshLog();
              }
              return FINISHED.indexOf(s.state) < 0;
            });
          }
          if (ids.length) setTimeout(tick, interval);
        })
        .catch(function () { setTimeout(tick, 2 * interval); });
    }
    setTimeout(tick, interval);
  }

  var live = {}, hasPanel = false;
  document.querySelectorAll("[data-job-live]").forEach(function (el) {
    if (FINISHED.indexOf(el.dataset.state) >= 0) return;
    hasPanel = hasPanel || el.classList.contains("job-status");
    (live[el.dataset.jobLive] = live[el.dataset.jobLive] || []).push(el);
  });
  watchAll(live, hasPanel ? 1500 : 3000);
})();
