/* courseforge SCO: finds the LMS API, initializes, scores the lesson's quiz, reports completion,
   the raw score and pass/fail against the mastery score, then commits and terminates.
   Its settings are data, not code: the page's <script type="application/json"
   id="courseforge-sco-data"> holds {version: "1.2" | "2004", mastery: 0..100, key: {name: answer}}. */
(function () {
  "use strict";
  var data = document.getElementById("courseforge-sco-data");
  var cfg = JSON.parse(data ? data.textContent : "null");
  if (!cfg) { return; }
  var v12 = cfg.version === "1.2";
  var apiName = v12 ? "API" : "API_1484_11";

  function findAPI(win) {
    for (var hops = 0; win && hops < 12; hops++) {
      if (win[apiName]) { return win[apiName]; }
      if (win.parent === win) { break; }
      win = win.parent;
    }
    if (window.opener && window.opener[apiName]) { return window.opener[apiName]; }
    return null;
  }

  var api = findAPI(window);
  var status = document.getElementById("sco-status");
  function say(text) { if (status) { status.textContent = text; } }
  if (!api) { say("No LMS found: this lesson's progress is not recorded."); return; }

  function get(name) { return v12 ? api.LMSGetValue(name) : api.GetValue(name); }
  function set(name, value) { return v12 ? api.LMSSetValue(name, String(value)) : api.SetValue(name, String(value)); }
  function commit() { return v12 ? api.LMSCommit("") : api.Commit(""); }
  function finish() { return v12 ? api.LMSFinish("") : api.Terminate(""); }

  if (String(v12 ? api.LMSInitialize("") : api.Initialize("")) !== "true") { say("The LMS refused to start this lesson."); return; }
  if (v12) { set("cmi.core.lesson_status", "incomplete"); } else { set("cmi.completion_status", "incomplete"); }

  function mastery() {
    var given = v12 ? parseFloat(get("cmi.student_data.mastery_score")) : parseFloat(get("cmi.scaled_passing_score")) * 100;
    return isNaN(given) ? cfg.mastery : given;
  }

  function norm(text) { return String(text).replace(/\s+/g, " ").trim().toLowerCase(); }

  function answerOf(name) {
    var checked = document.querySelector('input[name="' + name + '"]:checked');
    if (checked) { return checked.value; }
    var field = document.querySelector('[name="' + name + '"]');
    return field && field.type !== "radio" ? field.value : "";
  }

  var done = false;
  // Leaving without submitting: what was reported (incomplete) is committed and the session ends.
  window.addEventListener("pagehide", function () {
    if (done) { return; }
    done = true;
    if (v12) { set("cmi.core.exit", "suspend"); } else { set("cmi.exit", "suspend"); }
    commit();
    finish();
  });
  document.getElementById("sco-submit").addEventListener("click", function () {
    if (done) { return; }
    done = true;
    var names = Object.keys(cfg.key);
    var right = 0;
    names.forEach(function (name) { if (norm(answerOf(name)) === norm(cfg.key[name])) { right += 1; } });
    document.querySelectorAll("details.answer").forEach(function (d) { d.hidden = false; });
    var score = names.length ? Math.round(100 * right / names.length) : null;
    if (v12) {
      if (score !== null) {
        set("cmi.core.score.min", 0); set("cmi.core.score.max", 100); set("cmi.core.score.raw", score);
        set("cmi.core.lesson_status", score >= mastery() ? "passed" : "failed");
      } else {
        set("cmi.core.lesson_status", "completed");
      }
      set("cmi.core.exit", "");
    } else {
      set("cmi.completion_status", "completed");
      if (score !== null) {
        set("cmi.score.min", 0); set("cmi.score.max", 100); set("cmi.score.raw", score);
        set("cmi.score.scaled", score / 100);
        set("cmi.success_status", score >= mastery() ? "passed" : "failed");
      }
      set("cmi.exit", "normal");
    }
    commit();
    finish();
    say(score === null ? "Completed." : "Score: " + score + " / 100 (" + right + " of " + names.length + " right).");
  });
}());
