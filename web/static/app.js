// Volt CI live pages: the dashboard, a running build's pipeline and a
// running job's log follow server-sent events. Every HTML fragment comes
// from the server, rendered and escaped by html/template; this script only
// places it.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (live && window.EventSource) {
    var es = new EventSource(live.dataset.stream);
    es.addEventListener("dashboard", function (e) {
      live.innerHTML = e.data;
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
  }
  var build = document.getElementById("build");
  if (build && build.dataset.stream && window.EventSource) {
    var bs = new EventSource(build.dataset.stream);
    var place = function (e) {
      build.innerHTML = e.data;
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    };
    bs.addEventListener("build", place);
    bs.addEventListener("done", function (e) {
      place(e);
      bs.close();
      build.dataset.done = "true";
    });
  }
  var log = document.getElementById("log");
  if (log && log.dataset.stream && window.EventSource) {
    var stream = new EventSource(log.dataset.stream);
    var follow = function () {
      var atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      return atEnd;
    };
    stream.addEventListener("log", function (e) {
      var stick = follow();
      log.insertAdjacentHTML("beforeend", e.data);
      if (stick) { window.scrollTo(0, document.body.scrollHeight); }
    });
    stream.addEventListener("reset", function () { log.textContent = ""; });
    stream.addEventListener("done", function (e) {
      document.getElementById("summary").innerHTML = e.data;
      stream.close();
      log.dataset.done = "true";
    });
  }
})();
