// Progressive enhancement, and the only script: while an experiment is live, its results part is fetched again
// every few seconds and swapped in place (the page itself works without it: reload to refresh).
(function () {
  "use strict";
  var box = document.getElementById("results");
  if (!box) { return; }
  var seconds = Number(box.getAttribute("data-refresh"));
  var url = box.getAttribute("data-live");
  if (!seconds || !url) { return; }
  var status = document.getElementById("refresh-status");
  function decision() {
    var action = document.getElementById("decision-action");
    return action ? action.textContent : "";
  }
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected) { return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          var before = decision();
          box.innerHTML = html;
          // only a changed decision is announced to screen readers, not every refresh of the figures
          if (decision() !== before && status) { status.textContent = "Decision now: " + decision(); }
          box.setAttribute("data-refreshed-at", String(Date.now()));
        }
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .finally(function () { window.setTimeout(refresh, seconds * 1000); });
  }
  window.setTimeout(refresh, seconds * 1000);
}());
