// Device page: live panels, "capture now", the rules editor with zones drawn on the snapshot.
"use strict";

function startDevicePage() {
  const deviceId = document.body.dataset.liveDevice;
  const state = document.getElementById("capture-state");
  let awaiting = null;  // the trigger "capture now" made, until its snapshot arrives

  const refresh = visant.debounce(async () => {
    try {
      const html = await visant.request("GET", "/console/devices/" + encodeURIComponent(deviceId) + "/panels");
      visant.replaceFrom(html, "#status-panel, #gallery, #timeline");
    } catch (err) {
      visant.flash(err.message);
    }
  }, 200);

  document.addEventListener("visant:event", ({ detail: event }) => {
    if (event.kind !== "resync" && event.device_id !== deviceId) return;
    if (event.kind === "device" && event.changed === "deleted") {
      visant.flash("This device was deleted.");
      return;
    }
    if (event.kind === "capture" && awaiting && event.trigger_id === awaiting && state) {
      state.textContent = "New snapshot arrived.";
      awaiting = null;
    } else if (event.kind === "trigger" && awaiting && event.trigger_id === awaiting && state) {
      if (event.status === "failed" || event.status === "expired") {
        state.textContent = "The capture " + event.status + ".";
        awaiting = null;
      } else {
        state.textContent = "Capture " + event.status + "…";
      }
    }
    refresh();
  });

  const button = document.getElementById("capture-now");
  if (button) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const result = await visant.request("POST", "/console/devices/" + encodeURIComponent(deviceId) + "/capture", {});
        awaiting = result.trigger_id;
        if (state) state.textContent = result.online ? "Capture requested…" : "The device is offline: the capture waits until it connects.";
        refresh();
      } catch (err) {
        visant.flash(err.message);
      } finally {
        button.disabled = false;
      }
    });
  }
  startRulesEditor(deviceId);
}

function startRulesEditor(deviceId) {
  const editor = document.getElementById("rules-editor");
  const list = document.getElementById("rules");
  if (!editor || !list) return;
  let rules = [];
  try { rules = JSON.parse(editor.dataset.rules || "[]"); } catch (err) { rules = []; }
  let active = rules.length ? 0 : -1;
  const wrap = document.getElementById("zone-canvas");
  const canvas = wrap ? wrap.querySelector("canvas") : null;

  function draw() {
    if (!canvas) return;
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    rules.forEach((rule, index) => {
      if (!rule.zone || !rule.zone.length) return;
      ctx.beginPath();
      rule.zone.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
      ctx.closePath();
      ctx.lineWidth = Math.max(2, w / 300);
      ctx.strokeStyle = index === active ? "#1f6feb" : "#8a94a3";
      ctx.fillStyle = index === active ? "rgba(31,111,235,0.2)" : "rgba(138,148,163,0.15)";
      ctx.fill();
      ctx.stroke();
      rule.zone.forEach(([x, y]) => { ctx.fillStyle = "#1f6feb"; ctx.fillRect(x * w - 3, y * h - 3, 6, 6); });
    });
  }

  function field(label, value, onInput, attrs) {
    const wrapper = document.createElement("label");
    wrapper.textContent = label + " ";
    const input = document.createElement("input");
    Object.assign(input, attrs || {});
    input.value = value;
    input.addEventListener("input", () => onInput(input.value));
    wrapper.appendChild(input);
    return wrapper;
  }

  function render() {
    list.replaceChildren();
    rules.forEach((rule, index) => {
      const box = document.createElement("div");
      box.className = "rule";
      box.dataset.rule = String(index);
      if (index === active) box.dataset.active = "";
      box.addEventListener("click", () => { if (active !== index) { active = index; render(); } });
      const row = document.createElement("div");
      row.className = "row";
      row.append(
        field("Name", rule.name || "", (v) => (rule.name = v), { name: "rule-name" }),
        field("Labels", (rule.labels || []).join(", "), (v) => (rule.labels = v.split(",").map((s) => s.trim()).filter(Boolean)), { name: "rule-labels", placeholder: "person, car" }),
        field("Min confidence", rule.min_confidence ?? 0.5, (v) => (rule.min_confidence = Number(v)), { name: "rule-confidence", type: "number", min: 0, max: 1, step: 0.05 }),
      );
      const zone = document.createElement("p");
      zone.className = "muted";
      zone.dataset.zonePoints = String((rule.zone || []).length);
      zone.textContent = rule.zone && rule.zone.length ? "Zone: " + rule.zone.length + " points" : "Zone: anywhere";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove rule";
      remove.addEventListener("click", (event) => {
        event.stopPropagation();
        rules.splice(index, 1);
        active = Math.min(active, rules.length - 1);
        render();
      });
      box.append(row, zone, remove);
      list.appendChild(box);
    });
    draw();
  }

  if (canvas) {
    canvas.addEventListener("click", (event) => {
      if (active < 0) { rules.push({ name: "zone-" + (rules.length + 1), labels: ["person"], min_confidence: 0.5 }); active = rules.length - 1; }
      const rect = canvas.getBoundingClientRect();
      const x = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
      const y = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
      const rule = rules[active];
      rule.zone = (rule.zone || []).concat([[Number(x.toFixed(4)), Number(y.toFixed(4))]]);
      render();
    });
  }
  document.getElementById("add-rule")?.addEventListener("click", () => {
    rules.push({ name: "rule-" + (rules.length + 1), labels: ["person"], min_confidence: 0.5 });
    active = rules.length - 1;
    render();
  });
  document.getElementById("clear-zone")?.addEventListener("click", () => {
    if (active >= 0) { delete rules[active].zone; render(); }
  });
  document.getElementById("save-rules")?.addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const clean = rules.map((r) => {
        const out = { name: r.name, labels: r.labels || [], min_confidence: r.min_confidence ?? 0.5 };
        if (r.zone && r.zone.length) out.zone = r.zone;
        return out;
      });
      const saved = await visant.request("POST", "/console/devices/" + encodeURIComponent(deviceId) + "/rules", { rules: clean });
      rules = saved.rules;
      render();
      visant.flash("Rules saved (config version " + saved.config_version + ").", "notice");
    } catch (err) {
      visant.flash(err.message);
    } finally {
      button.disabled = false;
    }
  });
  render();
}

document.addEventListener("DOMContentLoaded", startDevicePage);
