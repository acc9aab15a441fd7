// Live fragments of the staff pages, without a framework: every element with data-live-url is refreshed by
// fetching that URL (same site, the session's cookie) every data-live-every seconds (default 5) and putting the
// HTML fragment in its place. It keeps going while the fragment's [data-live-state] says "sending", and stops at
// anything else (paused, sent, cancelled...) or at a non-200 answer (logged out, gone). Without this script the
// page shows the counts of its load, and a reload shows new ones.
(function () {
  "use strict";

  function keepGoing(element) {
    var state = element.querySelector("[data-live-state]");
    return state !== null && state.getAttribute("data-live-state") === "sending";
  }

  function poll(element) {
    var url = element.getAttribute("data-live-url");
    var seconds = Number(element.getAttribute("data-live-every")) || 5;
    if (!url || !keepGoing(element)) {
      return;
    }
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" }, redirect: "error" })
        .then(function (response) {
          if (response.status !== 200) {
            throw new Error("live fragment answered " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          // The fragment is the server's own template, every value in it escaped there.
          element.innerHTML = html;
          element.setAttribute("data-live-updated", String(Date.now()));
          poll(element);
        })
        .catch(function () {
          element.setAttribute("data-live-stopped", "error");
        });
    }, seconds * 1000);
  }

  function start() {
    var elements = document.querySelectorAll("[data-live-url]");
    for (var i = 0; i < elements.length; i += 1) {
      poll(elements[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
