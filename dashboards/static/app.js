"use strict";
// crampwatch dashboard: the overview timeline, live updates (server-sent events) and the intake
// log. Every text from the server is inserted as text (textContent), never as HTML.

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function localTime(iso, withDate = false) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return iso;
  const options = { hour: "2-digit", minute: "2-digit" };
  if (withDate) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
  return moment.toLocaleString(undefined, options);
}

function showLocalTimes() {
  document.querySelectorAll(".local-time[data-utc]").forEach((node) => {
    node.textContent = localTime(node.dataset.utc, true);
  });
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ? (typeof body.error === "string" ? body.error : JSON.stringify(body.error)) : response.statusText);
  return body;
}

// -- overview -------------------------------------------------------------------------------
async function drawTimeline() {
  const box = $("#timeline");
  if (!box) return;
  const wanted = new URLSearchParams(location.search).get("night") || box.dataset.night;
  const data = await getJSON("/api/events" + (wanted ? "?night=" + encodeURIComponent(wanted) : ""));
  if (!data.night) return;
  const name = $("#night-name");
  if (name) name.textContent = data.night;
  const from = new Date(data.from).getTime(), to = new Date(data.to).getTime();
  const width = 900, height = 90, x = (t) => ((new Date(t).getTime() - from) / (to - from)) * width;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "night timeline" });
  chart.appendChild(svg("rect", { x: 0, y: 0, width, height, fill: "#f6f7f9" }));
  // 12:00-18:00: the afternoon before the night (shown, not counted in nightly figures)
  chart.appendChild(svg("rect", { x: 0, y: 0, width: width / 4, height, fill: "#eceef2" }));
  for (const p of data.problems) {
    chart.appendChild(svg("rect", { class: "problem", x: x(p.from), y: 0, width: Math.max(1, x(p.to) - x(p.from)), height }));
  }
  for (const e of data.events) {
    const end = e.end || new Date().toISOString();
    const bar = svg("rect", { class: e.kind, "data-event": e.event_id, x: x(e.start), y: e.kind === "cramp" ? 20 : 50, width: Math.max(2, x(end) - x(e.start)), height: 25 });
    const title = svg("title");
    title.textContent = `${e.kind} on ${e.channel}, ${localTime(e.start)}, ${Math.round(e.duration_s)} s`;
    bar.appendChild(title);
    bar.addEventListener("click", () => { location.href = "/events/" + encodeURIComponent(e.event_id); });
    chart.appendChild(bar);
  }
  for (const m of data.markers) chart.appendChild(svg("line", { class: "marker", x1: x(m.at), x2: x(m.at), y1: 0, y2: height }));
  const hours = (to - from) / 3600e3;
  for (let h = 0; h <= hours; h += 3) {
    const label = svg("text", { x: (h / hours) * width + 2, y: height - 4, "font-size": 10, fill: "#667085" });
    label.textContent = localTime(new Date(from + h * 3600e3).toISOString());
    chart.appendChild(label);
  }
  box.replaceChildren(chart);
  const rows = $("#night-events tbody");
  rows.replaceChildren(...data.events.map((e) => {
    const row = el("tr", { "data-event": e.event_id, class: "event-row " + e.kind });
    const link = el("a", { href: "/events/" + encodeURIComponent(e.event_id) }, localTime(e.start));
    const cell = el("td"); cell.appendChild(link); row.appendChild(cell);
    row.appendChild(el("td", {}, e.channel));
    row.appendChild(el("td", {}, e.phase === "started" ? e.kind + " (in progress)" : e.kind));
    row.appendChild(el("td", {}, Math.round(e.duration_s) + " s"));
    row.appendChild(el("td", {}, Math.round(e.peak_uv || 0) + " µV"));
    return row;
  }));
}

async function refreshLive() {
  const status = await getJSON("/api/status");
  const live = $("#live");
  if (!live) return;
  const heading = el("h2", {}, "Now");
  const lines = status.devices.map((d) => {
    const p = el("p", { class: "device" });
    p.appendChild(el("span", { class: "badge " + d.status }, d.status));
    let text = " " + d.device;
    if (d.state) {
      text += " — " + Object.entries(d.state.channels).map(([n, c]) => `${n}: ${c.state}`).join(", ");
      text += ` · ${d.state.cramps_tonight} cramp(s) this session`;
    }
    p.appendChild(document.createTextNode(text));
    return p;
  });
  live.replaceChildren(heading, ...(lines.length ? lines : [el("p", { class: "muted" }, "No device has reported yet.")]));
}

function listen() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/live");
  source.onmessage = (message) => {
    const kinds = JSON.parse(message.data);
    if ($("#timeline") && kinds.some((k) => ["event", "quality", "marker"].includes(k))) drawTimeline();
    if ($("#live") && kinds.some((k) => ["state", "status", "event"].includes(k))) refreshLive();
  };
}

// -- intake ---------------------------------------------------------------------------------
function say(text, ok) {
  const box = $("#intake-message");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
}

function formPayload(form) {
  const data = Object.fromEntries(new FormData(form));
  const payload = { factor: data.factor.trim(), amount: data.amount.trim() || null, note: data.note || null };
  if (data.time) payload.time = data.time.length === 16 ? data.time + ":00" : data.time;
  // A new id for every new entry: two identical glasses of water are two entries.
  if (!data.entry_id) payload.entry_id = newId();
  return payload;
}

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}

async function saveIntake(payload, entryId) {
  const url = entryId ? "/api/intake/" + encodeURIComponent(entryId) : "/api/intake";
  return getJSON(url, { method: entryId ? "PUT" : "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

function setUpIntake() {
  const form = $("#intake-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const saved = await saveIntake(formPayload(form), form.entry_id.value);
      say(`Saved: ${saved.amount} ${saved.unit} ${saved.factor}.`, true);
      setTimeout(() => location.reload(), 400);
    } catch (error) { say(error.message, false); }
  });
  document.querySelectorAll(".quick-add").forEach((button) => button.addEventListener("click", async () => {
    try {
      const saved = await saveIntake({ factor: button.dataset.factor, amount: Number(button.dataset.amount), unit: button.dataset.unit, entry_id: newId() });
      say(`Saved: ${saved.amount} ${saved.unit} ${saved.factor}.`, true);
      setTimeout(() => location.reload(), 400);
    } catch (error) { say(error.message, false); }
  }));
  document.querySelectorAll("#intake-log .delete").forEach((button) => button.addEventListener("click", async () => {
    const row = button.closest("tr");
    try { await getJSON("/api/intake/" + encodeURIComponent(row.dataset.entry), { method: "DELETE" }); row.remove(); say("Deleted.", true); }
    catch (error) { say(error.message, false); }
  }));
  document.querySelectorAll("#intake-log .edit").forEach((button) => button.addEventListener("click", () => {
    const row = button.closest("tr");
    form.factor.value = row.dataset.factor;
    form.amount.value = `${row.dataset.amount} ${row.dataset.unit}`;
    form.note.value = row.dataset.note;
    const t = new Date(row.dataset.time);
    form.time.value = new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    form.entry_id.value = row.dataset.entry;
    say("Editing: change it and press Add.", true);
  }));
  $("#import-button").addEventListener("click", async () => {
    const file = $("#import-file").files[0];
    if (!file) { say("Choose the CSV file first.", false); return; }
    try {
      const result = await getJSON("/api/intake/import", { method: "POST", headers: { "Content-Type": "text/csv" }, body: await file.text() });
      say(`Imported ${result.entries} entries (${result.new} new).`, true);
      setTimeout(() => location.reload(), 600);
    } catch (error) { say(error.message, false); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showLocalTimes();
  setUpIntake();
  if ($("#timeline")) drawTimeline().catch((error) => console.error(error));
  listen();
});
