// Keeps a request page's status, execution and timeline current while the change can run.
// Polls the page's data-url (maintenance:request_timeline) every 3 s while data-live is
// "true" (every 10 s while the request still waits for an approval, which can take hours);
// replaces [data-live-part="replace"] elements by id, appends new timeline items
// (so a screen reader announces only what is new), and stops when the fragment says so.
// When the status changes (approved, running, finished), the rest of the page (approvals,
// the buttons one may still press) is out of date too: it is fetched again and swapped in
// without a reload, so nobody loses their place. Polling does not count as activity for
// the idle timeout: once the session has ended, a poll is answered 401 and the page reloads.
(function () {
  "use strict";
  var INTERVAL_MS = 3000;
  var WAITING_INTERVAL_MS = 10000;
  var MAX_FAILURES = 20;
  var root = document.getElementById("request-live");
  if (!root || !window.fetch || !window.DOMParser) return;
  var url = root.getAttribute("data-url");
  var failures = 0;
  var shownStatus = root.getAttribute("data-status");

  function apply(fresh) {
    fresh.querySelectorAll("[data-live-part]").forEach(function (part) {
      var current = document.getElementById(part.id);
      if (!current) return;
      if (part.getAttribute("data-live-part") === "append") {
        Array.prototype.forEach.call(part.children, function (item) {
          if (item.id && !document.getElementById(item.id)) {
            current.appendChild(document.importNode(item, true));
          }
        });
      } else if (current.innerHTML !== part.innerHTML) {
        current.innerHTML = part.innerHTML;
      }
    });
    root.setAttribute("data-live", fresh.getAttribute("data-live"));
    root.setAttribute("data-status", fresh.getAttribute("data-status"));
  }

  function schedule() {
    if (root.getAttribute("data-live") !== "true") return;
    var waiting = root.getAttribute("data-status") === "pending_approval";
    window.setTimeout(poll, waiting ? WAITING_INTERVAL_MS : INTERVAL_MS);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        // 401: the session ended (left alone too long); the reload shows the login page.
        if (response.status === 401) {
          window.location.reload();
          throw new Error("logged out");
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        failures = 0;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("request-live");
        if (fresh) apply(fresh);
        if (fresh && fresh.getAttribute("data-status") !== shownStatus) {
          refreshPage();
        } else {
          schedule();
        }
      })
      .catch(function () {
        failures += 1;
        if (failures < MAX_FAILURES) schedule();
      });
  }

  function refreshPage() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var main = document.querySelector("main");
        var freshMain = doc.querySelector("main");
        if (main && freshMain) main.innerHTML = freshMain.innerHTML;
        root = document.getElementById("request-live") || root;
        shownStatus = root.getAttribute("data-status");
        schedule();
      })
      .catch(function () {
        failures += 1;
        if (failures < MAX_FAILURES) schedule();
      });
  }

  schedule();
})();
