/* courseforge cmi5 AU: the minimal cmi5 launch handshake and the lesson's xAPI statements.
   Launched by a cmi5 LMS with ?endpoint=&fetch=&actor=&registration=&activityId= it POSTs the
   fetch URL for its auth token, reads LMS.LaunchData from the LRS's State API when the LRS has
   one (its masteryScore wins), sends "initialized"; when the learner submits: one "answered"
   per graded question (response, success), then "passed" or "failed" (score scaled 0..1 against
   the mastery score), "completed" and "terminated". Leaving without submitting sends
   "terminated" only. Settings are data: <script type="application/json" id="courseforge-au-data">
   holds {mastery: 0..100, key: {name: answer}}. When the package holds @xapi/cmi5's bundle
   (window.Cmi5), the lesson speaks cmi5 through it instead (viaLibrary, at the end). */
(function () {
  "use strict";
  var data = document.getElementById("courseforge-au-data");
  var cfg = JSON.parse(data ? data.textContent : "null");
  var statusEl = document.getElementById("au-status");
  function say(text) { if (statusEl) { statusEl.textContent = text; } }
  if (!cfg) { return; }
  function norm(text) { return String(text).replace(/\s+/g, " ").trim().toLowerCase(); }
  function answerOf(name) {
    var checked = document.querySelector('input[name="' + name + '"]:checked');
    if (checked) { return checked.value; }
    var field = document.querySelector('[name="' + name + '"]');
    return field && field.type !== "radio" ? field.value : "";
  }
  if (window.Cmi5) { viaLibrary(window.Cmi5); return; }
  var q = new URLSearchParams(window.location.search);
  var endpoint = q.get("endpoint"), fetchUrl = q.get("fetch"), registration = q.get("registration");
  var activityId = q.get("activityId"), actor;
  try { actor = JSON.parse(q.get("actor") || "null"); } catch (e) { actor = null; }
  if (!endpoint || !fetchUrl || !actor || !activityId || !registration) {
    say("Not launched by a cmi5 LMS: this lesson's progress is not recorded.");
    return;
  }
  endpoint = endpoint.replace(/\/?$/, "/");
  var CMI5 = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
  var MOVEON = "https://w3id.org/xapi/cmi5/context/categories/moveon";
  var VERBS = {
    initialized: "http://adlnet.gov/expapi/verbs/initialized",
    answered: "http://adlnet.gov/expapi/verbs/answered",
    passed: "http://adlnet.gov/expapi/verbs/passed",
    failed: "http://adlnet.gov/expapi/verbs/failed",
    completed: "http://adlnet.gov/expapi/verbs/completed",
    terminated: "http://adlnet.gov/expapi/verbs/terminated"
  };
  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0; return (c === "x" ? r : (r & 3 | 8)).toString(16);
    });
  }
  var session = uuid(), auth = null, mastery = cfg.mastery / 100, queue = Promise.resolve();

  function statement(verb, object, result, categories) {
    var s = {
      id: uuid(), actor: actor, timestamp: new Date().toISOString(),
      verb: {id: VERBS[verb], display: {"en-US": verb}},
      object: {id: object, objectType: "Activity"},
      context: {registration: registration, extensions: {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": session}}
    };
    if (categories.length) { s.context.contextActivities = {category: categories.map(function (id) { return {id: id}; })}; }
    if (result) { s.result = result; }
    return s;
  }
  function send(verb, object, result, categories) {
    var body = JSON.stringify(statement(verb, object || activityId, result, categories || [CMI5]));
    queue = queue.then(function () {
      return fetch(endpoint + "statements", {
        method: "POST", body: body,
        headers: {"Authorization": auth, "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
      }).then(function (r) { if (!r.ok) { throw new Error("LRS answered " + r.status); } });
    });
    return queue;
  }
  function launchData() {
    var url = endpoint + "activities/state?stateId=LMS.LaunchData&activityId=" + encodeURIComponent(activityId) +
      "&agent=" + encodeURIComponent(JSON.stringify(actor)) + "&registration=" + encodeURIComponent(registration);
    return fetch(url, {headers: {"Authorization": auth, "X-Experience-API-Version": "1.0.3"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; });
  }

  var started = fetch(fetchUrl, {method: "POST"})
    .then(function (r) { if (!r.ok) { throw new Error("fetch URL answered " + r.status); } return r.json(); })
    .then(function (token) { auth = "Basic " + token["auth-token"]; return launchData(); })
    .then(function (launch) {
      if (launch && typeof launch.masteryScore === "number") { mastery = launch.masteryScore; }
      return send("initialized");
    })
    .then(function () { say("Started: your answers will be recorded."); })
    .catch(function (e) { say("The LMS refused to start this lesson (" + e.message + ")."); throw e; });

  var done = false;
  window.addEventListener("pagehide", function () {
    if (done || !auth) { return; }
    done = true;
    send("terminated");
  });
  document.getElementById("au-submit").addEventListener("click", function () {
    if (done) { return; }
    done = true;
    started.then(function () {
      var names = Object.keys(cfg.key), right = 0;
      names.forEach(function (name) {
        var given = answerOf(name), ok = norm(given) === norm(cfg.key[name]);
        if (ok) { right += 1; }
        send("answered", activityId + "/" + name, {response: String(given), success: ok}, []);
      });
      document.querySelectorAll("details.answer").forEach(function (d) { d.hidden = false; });
      if (names.length) {
        var scaled = right / names.length;
        send(scaled >= mastery ? "passed" : "failed", null,
             {score: {scaled: scaled, raw: right, min: 0, max: names.length}, success: scaled >= mastery}, [CMI5, MOVEON]);
      }
      send("completed", null, {completion: true}, [CMI5, MOVEON]);
      return send("terminated");
    }).then(function () { say("Sent to the LRS."); })
      .catch(function (e) { say("Not recorded: " + e.message); });
  });

  /* The same lesson through @xapi/cmi5 (the package holds its bundle, exports.cmi5_library):
     the library reads the launch URL, fetches the token and LMS.LaunchData, and sends the cmi5
     statements; each graded question an "answered" interaction under the test "quiz". */
  function viaLibrary(Cmi5) {
    if (!Cmi5.isCmiAvailable) {
      say("Not launched by a cmi5 LMS: this lesson's progress is not recorded.");
      return;
    }
    var cmi5 = new Cmi5(), mastery = cfg.mastery / 100, done = false, ready = false;
    var started = cmi5.initialize().then(function () {
      var launch = cmi5.getLaunchData();
      if (launch && typeof launch.masteryScore === "number") { mastery = launch.masteryScore; }
      ready = true;
      say("Started: your answers will be recorded.");
    }).catch(function (e) { say("The LMS refused to start this lesson (" + e.message + ")."); throw e; });
    window.addEventListener("pagehide", function () {
      if (done || !ready) { return; }
      done = true;
      cmi5.terminate();
    });
    document.getElementById("au-submit").addEventListener("click", function () {
      if (done) { return; }
      done = true;
      started.then(function () {
        var names = Object.keys(cfg.key), right = 0, chain = Promise.resolve();
        names.forEach(function (name) {
          var given = answerOf(name), ok = norm(given) === norm(cfg.key[name]);
          var radio = document.querySelector('input[name="' + name + '"][type="radio"]');
          if (ok) { right += 1; }
          chain = chain.then(function () {
            return cmi5.interaction("quiz", name, String(given), {
              type: "http://adlnet.gov/expapi/activities/cmi.interaction",
              interactionType: radio ? "choice" : "fill-in",
              correctResponsesPattern: [String(cfg.key[name])]
            }, ok);
          });
        });
        document.querySelectorAll("details.answer").forEach(function (d) { d.hidden = false; });
        return chain.then(function () {
          if (!names.length) { return null; }
          var score = {scaled: right / names.length, raw: right, min: 0, max: names.length};
          return score.scaled >= mastery ? cmi5.pass(score) : cmi5.fail(score);
        }).then(function () { return cmi5.complete(); })
          .then(function () { return cmi5.terminate(); });
      }).then(function () { say("Sent to the LRS."); })
        .catch(function (e) { say("Not recorded: " + e.message); });
    });
  }
})();
