// The analyst's jobs page: refresh state, progress and outcome from the jobs API every few seconds.
// Same origin, the session cookie; no framework, nothing from a CDN. Without it the page still works (reload).
"use strict";
(function () {
  var table = document.getElementById("jobs");
  if (!table || !window.fetch) { return; }
  var LABELS = {accepted: "en cola / queued", running: "en curso / running", successful: "terminado / done",
                failed: "fallido / failed", dismissed: "cancelado / cancelled"};
  var FINAL = {successful: true, failed: true, dismissed: true};

  function outcome(job) {
    if (job.status === "successful" && job.summary && job.processID === "retrain") {
      return "modelo / model " + (job.summary.version || "") + ": " + (job.summary.model || "");
    }
    if (job.status === "successful" && job.summary && job.summary.alert_counts) {
      var c = job.summary.alert_counts;
      return c.new + " nuevas / new, " + c.updated + " actualizadas / updated, " + c.unchanged + " sin cambios / unchanged";
    }
    return job.status === "failed" ? (job.error || "") : "";
  }

  function update(job) {
    var row = table.querySelector('tr[data-job="' + job.jobID + '"]');
    if (!row) { return false; }
    var label = LABELS[job.status] || job.status;
    if (job.cancel_requested && job.status === "running") { label += " (cancelando / cancelling)"; }
    row.querySelector(".status").textContent = label;
    row.querySelector("progress").value = job.progress;
    row.querySelector(".pct").textContent = job.progress + "%";
    row.querySelector(".message").textContent = job.message || "";
    row.querySelector(".outcome").textContent = outcome(job);
    if (FINAL[job.status]) {
      var form = row.querySelector("form.cancel");
      if (form) { form.remove(); }
    }
    return true;
  }

  function refresh() {
    fetch("/api/v1/jobs?limit=50", {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        body.jobs.forEach(update);
      })
      .catch(function () { /* a weak connection: try again at the next tick */ });
  }

  setInterval(refresh, 3000);
})();
