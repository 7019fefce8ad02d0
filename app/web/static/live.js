// Mission Control: live pages (poll with backoff until the run or attempt is final) and expand-on-demand.
(function () {
  "use strict";
  var FIRST = 1000, MAX = 10000;

  function busy(live) {
    // never swap the page under someone typing guidance for a retry
    var active = document.activeElement;
    if (active && live.contains(active) && active.tagName === "INPUT") return true;
    var inputs = live.querySelectorAll("input[type=text]");
    for (var i = 0; i < inputs.length; i++) if (inputs[i].value) return true;
    return false;
  }

  function follow() {
    var delay = FIRST;
    function tick() {
      var live = document.getElementById("live");
      if (!live || live.dataset.final === "1") return;
      if (busy(live)) { setTimeout(tick, delay); return; }
      var url = live.dataset.poll + (live.dataset.poll.indexOf("?") < 0 ? "?" : "&") +
        "since=" + encodeURIComponent(live.dataset.version);
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 200) return r.text();
          delay = Math.min(delay * (r.status === 204 ? 1.5 : 2), MAX);
          return null;
        })
        .then(function (html) {
          if (html) {
            var t = document.createElement("template");
            t.innerHTML = html.trim();
            var fresh = t.content.firstElementChild;
            if (fresh && fresh.id === "live") {
              document.getElementById("live").replaceWith(fresh);
              delay = FIRST;
              if (fresh.dataset.final === "1") return;
            }
          }
          setTimeout(tick, delay);
        })
        .catch(function () { delay = Math.min(delay * 2, MAX); setTimeout(tick, delay); });
    }
    setTimeout(tick, delay);
  }

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("a.expand") : null;
    if (!link) return;
    ev.preventDefault();
    fetch(link.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var target = document.getElementById(link.dataset.expand);
        if (target) target.textContent = text;  // text, never HTML
        link.remove();
      })
      .catch(function () { window.location.href = link.href; });
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", follow);
  else follow();
})();
