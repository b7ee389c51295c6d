// Visant console: the live stream, fetch helpers and the fleet page's live rows.
"use strict";

const visant = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  function flash(message, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.dataset.kind = kind || "problem";
    box.hidden = false;
  }

  async function request(method, url, body) {
    const headers = { "X-Requested-With": "fetch", "X-CSRF-Token": csrf(), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error("The server could not be reached; check your connection.");
    }
    if (response.status === 401) {
      window.location.href = "/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("Please sign in again.");
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("application/json") ? await response.json() : await response.text();
    if (!response.ok) {
      const detail = data && data.detail ? data.detail : "The request failed (" + response.status + ").";
      throw new Error(detail);
    }
    return data;
  }

  function replaceFrom(html, selector, root) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll(selector).forEach((fresh) => {
      const key = fresh.id ? "#" + CSS.escape(fresh.id) : null;
      const old = key ? (root || document).querySelector(key) : null;
      if (old) old.replaceWith(fresh);
    });
  }

  // One EventSource per page; the browser reconnects by itself after errors. Page scripts
  // listen for the "visant:event" DOM event ({kind, device_id, ...}; kind "resync": reload).
  function live() {
    const onEvent = (event) => document.dispatchEvent(new CustomEvent("visant:event", { detail: event }));
    const state = document.getElementById("live-state");
    const device = document.body.dataset.liveDevice;
    const source = new EventSource("/console/events" + (device ? "?device=" + encodeURIComponent(device) : ""));
    const set = (value) => { if (state) { state.dataset.state = value; state.title = "Live updates: " + value; } };
    source.addEventListener("open", () => set("live"));
    source.addEventListener("error", () => set(source.readyState === EventSource.CLOSED ? "off" : "connecting"));
    let seen = false;
    source.addEventListener("hello", () => {
      set("live");
      if (seen) onEvent({ kind: "resync" });  // a reconnect: what was missed is reloaded
      seen = true;
    });
    for (const kind of ["presence", "trigger", "capture", "alert", "device", "resync"]) {
      source.addEventListener(kind, (message) => {
        let event = { kind };
        try { event = JSON.parse(message.data); } catch (err) { /* resync has no body */ }
        event.kind = kind;
        onEvent(event);
      });
    }
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  function debounce(fn, ms) {
    let timer = null;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  return { csrf, flash, request, replaceFrom, live, debounce };
})();

// Confirmation for dangerous forms (delete, rotate key).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset?.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Fleet page: presence at once, everything else by re-reading the changed rows.
function startFleet(fleet) {
  const dirty = new Set();
  const tile = (id) => fleet.querySelector('[data-device="' + CSS.escape(id) + '"]');
  const refresh = visant.debounce(async () => {
    const ids = [...dirty];
    dirty.clear();
    if (!ids.length) return;
    try {
      const html = await visant.request("GET", "/console/fleet/rows?ids=" + ids.map(encodeURIComponent).join(","));
      const doc = new DOMParser().parseFromString(html, "text/html");
      doc.querySelectorAll("[data-device]").forEach((fresh) => tile(fresh.dataset.device)?.replaceWith(fresh));
    } catch (err) {
      visant.flash(err.message);
    }
  }, 250);
  document.addEventListener("visant:event", ({ detail: event }) => {
    if (event.kind === "resync") {
      fleet.querySelectorAll("[data-device]").forEach((el) => dirty.add(el.dataset.device));
      refresh();
      return;
    }
    const el = event.device_id && tile(event.device_id);
    if (!el) return;
    if (event.kind === "presence") {
      const badge = el.querySelector("[data-presence]");
      badge.textContent = event.online ? "online" : "offline";
      badge.className = "badge " + (event.online ? "badge-online" : "badge-offline");
    }
    dirty.add(event.device_id);
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const fleet = document.querySelector("[data-fleet]");
  if (fleet) startFleet(fleet);
  if (document.getElementById("live-state")) visant.live();  // signed-in pages only
});
