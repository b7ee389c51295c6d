// Alerts page: a new alert of the org goes on top, a changed one is re-read in place.
"use strict";

function startAlerts(list) {
  const wanted = new Set();
  const filter = "&kind=" + encodeURIComponent(list.dataset.kind) + "&state=" + encodeURIComponent(list.dataset.state);
  const refresh = visant.debounce(async () => {
    const ids = [...wanted];
    wanted.clear();
    if (!ids.length) return;
    try {
      const html = await visant.request("GET", "/console/alerts/rows?ids=" + ids.map(encodeURIComponent).join(",") + filter);
      const doc = new DOMParser().parseFromString(html, "text/html");
      const fresh = new Map([...doc.querySelectorAll("[data-alert]")].map((el) => [el.dataset.alert, el]));
      for (const id of ids) {
        const old = list.querySelector('[data-alert="' + CSS.escape(id) + '"]');
        const row = fresh.get(id);
        if (old && row) old.replaceWith(row);
        else if (old) old.remove();  // no longer passes the filter
        else if (row && list.dataset.liveNew === "yes") list.prepend(row);
      }
      document.getElementById("alerts-empty").hidden = list.querySelector("[data-alert]") !== null;
    } catch (err) {
      visant.flash(err.message);
    }
  }, 150);
  document.addEventListener("visant:event", ({ detail: event }) => {
    if (event.kind === "resync") {
      window.location.reload();
      return;
    }
    if (event.kind !== "alert" || !event.alert_id) return;
    wanted.add(event.alert_id);
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const list = document.querySelector("[data-alerts]");
  if (list) startAlerts(list);
});
