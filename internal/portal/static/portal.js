// Weft portal: the little script the pages use. Pages work without it;
// it adds confirmation of destructive actions and live refresh of the
// parts of a page marked data-live, driven by the server-sent events of
// /events (a "change" for every event of the cloud, a "tick" every few
// seconds).
(function () {
  "use strict";

  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
    }
  });

  var live = document.querySelectorAll("[data-live][id]");
  if (!live.length || !window.EventSource || !window.fetch) {
    return;
  }
  var pending = null;
  var busy = false;

  function refresh() {
    pending = null;
    if (busy) {
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) {
        if (!resp.ok || resp.redirected) {
          throw new Error(resp.status);
        }
        return resp.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          // Leave alone a part the user is working in.
          if (fresh && !el.contains(document.activeElement)) {
            el.replaceWith(document.importNode(fresh, true));
          }
        });
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  function soon() {
    if (!pending) {
      pending = window.setTimeout(refresh, 300);
    }
  }

  var events = new EventSource("/events");
  events.addEventListener("change", soon);
  events.addEventListener("tick", soon);
})();
