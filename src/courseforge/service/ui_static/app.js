// courseforge dashboard: follows jobs over server-sent events (the session cookie is the
// credential; nothing secret is ever in a URL). Pages work without it, just not live.
"use strict";
(function () {
  function follow(url, onEvent) {
    var source = new EventSource(url);
    ["snapshot", "progress", "status"].forEach(function (kind) {
      source.addEventListener(kind, function (ev) {
        var data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        onEvent(kind, data);
        if (kind === "status") { source.close(); }
      });
    });
    return source;
  }

  function setStatus(el, status) {
    if (!el || !status) { return; }
    el.textContent = status;
    el.className = "status s-" + status;
  }

  function setPhase(root, name, phase) {
    var row = root.querySelector('tr[data-phase="' + CSS.escape(name) + '"]');
    if (!row || !phase) { return; }
    var bar = row.querySelector("progress");
    var total = Math.max(1, phase.total || 0);
    bar.max = total;
    bar.value = phase.state === "done" && !phase.total ? 1 : Math.min(phase.done || 0, total);
    row.querySelector("[data-state]").textContent = phase.state || "";
    row.querySelector("[data-count]").textContent = phase.total ? (phase.done || 0) + "/" + phase.total : "";
  }

  function setSpend(root, spent, budget) {
    var line = root.querySelector("[data-spend]");
    if (!line || spent === undefined || spent === null || !budget) { return; }
    line.hidden = false;
    line.querySelector("[data-spent]").textContent = "$" + Number(spent).toFixed(4);
    line.querySelector("[data-budget]").textContent = "$" + Number(budget).toFixed(2);
    var meter = line.querySelector("meter");
    if (meter) { meter.value = spent / budget; }
    var share = line.querySelector("[data-spent-share]");
    if (share) { share.textContent = Math.round(100 * spent / budget) + "%"; }
  }

  function jobPage(root) {
    var status = root.querySelector("[data-status]");
    var message = root.querySelector("[data-message]");
    var lessons = root.querySelector("[data-lessons]");
    root.setAttribute("data-live", "connecting");
    follow(root.getAttribute("data-events"), function (kind, data) {
      root.setAttribute("data-live", "open");
      if (kind === "snapshot") {
        setStatus(status, data.status);
        var phases = (data.progress || {}).phases || {};
        Object.keys(phases).forEach(function (name) { setPhase(root, name, phases[name]); });
        if (data.progress && data.progress.message) { message.textContent = data.progress.message; }
        if (data.progress) { setSpend(root, data.progress.spent_usd, data.progress.budget_usd); }
      } else if (kind === "progress") {
        setStatus(status, "running");
        var state = data.kind === "done" ? "done" : "running";
        setPhase(root, data.phase, { state: state, done: data.kind === "done" ? data.total : data.done, total: data.total });
        if (data.message) { message.textContent = data.phase + ": " + data.message; }
        setSpend(root, data.spent_usd, data.budget_usd);
        if (data.kind === "task_done" && data.phase === "lessons") {
          var item = document.createElement("li");
          item.textContent = data.message;
          lessons.appendChild(item);
        }
      } else if (kind === "status") {
        setStatus(status, data.status);
        root.setAttribute("data-live", "finished");
        window.setTimeout(function () { window.location.reload(); }, 400);
      }
    });
  }

  function jobsList(rows) {
    // Browsers keep about six connections per host: follow the four newest active jobs.
    Array.prototype.slice.call(rows, 0, 4).forEach(function (row) {
      var id = row.getAttribute("data-live-job");
      var status = row.querySelector("[data-status]");
      var message = row.querySelector("[data-message]");
      follow("/ui/jobs/" + encodeURIComponent(id) + "/events", function (kind, data) {
        if (kind === "snapshot" || kind === "status") { setStatus(status, data.status); }
        if (kind === "progress") {
          setStatus(status, "running");
          message.textContent = data.phase + (data.total ? " " + data.done + "/" + data.total : "") +
            (data.message ? ": " + data.message : "");
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var job = document.querySelector("[data-events]");
    if (job) { jobPage(job); }
    var rows = document.querySelectorAll("tr[data-live-job]");
    if (rows.length) { jobsList(rows); }
  });
})();

// The course form's JSON file: read in the browser into the JSON box (nothing uploaded apart).
(function () {
  document.querySelectorAll("input[type=file][data-json-into]").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      var box = document.getElementById(input.getAttribute("data-json-into"));
      if (!file || !box) { return; }
      file.text().then(function (text) { box.value = text; });
    });
  });
})();

// The course form's source files: each file picked read into a source row (title: its name,
// text: its content), rows added as needed (nothing uploaded apart; without script, paste).
(function () {
  function emptyRow(table) {
    var rows = table.querySelectorAll("tr[data-source-row]");
    for (var i = 0; i < rows.length; i++) {
      var n = rows[i].getAttribute("data-source-row");
      if (!document.getElementById("m" + n + "-title").value && !document.getElementById("m" + n + "-text").value) {
        return n;
      }
    }
    var last = rows[rows.length - 1];
    var old = last.getAttribute("data-source-row");
    var next = String(Number(old) + 1);
    var row = last.cloneNode(true);
    row.setAttribute("data-source-row", next);
    row.querySelectorAll("[id],[name],[for]").forEach(function (el) {
      ["id", "name", "for"].forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value) { el.setAttribute(attr, value.replace("m" + old + "-", "m" + next + "-")); }
      });
    });
    row.querySelectorAll("label.sr-only").forEach(function (label) {
      label.textContent = label.textContent.replace(/source \d+/, "source " + (Number(next) + 1));
    });
    row.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    row.querySelectorAll("input[type=text],input:not([type]),textarea").forEach(function (el) {
      el.value = ""; el.removeAttribute("aria-invalid"); el.removeAttribute("aria-describedby");
    });
    row.querySelectorAll("input[type=checkbox]").forEach(function (el) { el.checked = false; });
    last.parentNode.appendChild(row);
    return next;
  }

  document.querySelectorAll("input[type=file][data-sources-into]").forEach(function (input) {
    input.addEventListener("change", function () {
      var table = document.getElementById(input.getAttribute("data-sources-into"));
      if (!table || !input.files) { return; }
      Array.prototype.reduce.call(input.files, function (done, file) {
        return done.then(function () {
          return file.text().then(function (text) {
            var n = emptyRow(table);
            document.getElementById("m" + n + "-title").value = file.name.replace(/\.[^.]+$/, "");
            document.getElementById("m" + n + "-text").value = text;
          });
        });
      }, Promise.resolve()).then(function () { table.setAttribute("data-read", String(input.files.length)); });
    });
  });
})();
