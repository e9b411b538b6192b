"use strict";
// crampwatch dashboard: live updates on top of the server-rendered pages (server-sent events:
// the parts that changed are fetched again as HTML and swapped in), the intake form (factor
// picker, preview, "did you mean", delete that asks first) and the report's print button.
// Every text from the server is inserted as text (textContent), never as HTML.

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

class ApiError extends Error {
  constructor(message, body) { super(message); this.body = body; }
}

// Changes go to the JSON API, which the request guard lets through from this page's own origin
// with a JSON (or, for the import, CSV) body; the answer forms carry the guard's CSRF token.
async function getJSON(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? (typeof body.error === "string" ? body.error : JSON.stringify(body.error)) : response.statusText;
    throw new ApiError(message, body);
  }
  return body;
}

// -- live updates ---------------------------------------------------------------------------
// A part of a page marked data-live="event,state,..." is fetched again when one of those kinds
// of change arrives, and replaced by the server's new rendering of it.
let refreshTimer = null;
let refreshing = false;
const pending = new Set();

// At most one refresh at a time, soon after the first change of a burst (not after the last:
// a busy device never stops talking); changes during a refresh start another when it is done.
function scheduleRefresh() {
  if (refreshTimer || refreshing) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    refreshing = true;
    try { await refreshParts(); } catch (error) { console.error(error); }
    refreshing = false;
    if (pending.size) scheduleRefresh();
  }, 150);
}

async function refreshParts() {
  const parts = $$("[data-live]").filter((part) => part.dataset.live.split(",").some((k) => pending.has(k)));
  pending.clear();
  if (!parts.length) return;
  const response = await fetch(location.href, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const part of parts) {
    const replacement = fresh.getElementById(part.id);
    if (!replacement) continue;
    const open = new Set($$("details[open]", part).map((d) => d.closest("section") && d.closest("section").id));
    part.replaceChildren(...Array.from(replacement.childNodes).map((n) => document.importNode(n, true)));
    $$("details", part).forEach((d) => { if (open.has(d.closest("section") && d.closest("section").id)) d.open = true; });
    if (window.crampwatchCharts) window.crampwatchCharts.drawAll(part);
  }
}

function listen() {
  if (!window.EventSource || !$("[data-live]")) return;
  const source = new EventSource("/api/live");
  source.onmessage = (message) => {
    JSON.parse(message.data).forEach((kind) => pending.add(kind));
    scheduleRefresh();
  };
}

// -- intake ---------------------------------------------------------------------------------
let factors = [];

function say(text, ok, extra = []) {
  const box = $("#intake-message");
  box.replaceChildren(el("span", {}, text), ...extra);
  box.className = ok ? "ok" : "error";
}

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}

function factorNamed(name) {
  const folded = name.trim().toLowerCase().replace(/[\s_-]+/g, "_");
  return factors.find((f) => [f.key, f.label.toLowerCase(), ...f.aliases].some((n) => n.toLowerCase().replace(/[\s_-]+/g, "_") === folded));
}

function unitOptions(factor, named) {
  const select = $("#unit-select");
  const options = [el("option", { value: "" }, factor ? "unit" : "unit (pick what first)")];
  if (factor) {
    const own = factor.measures.filter((m) => !m.when_named || m.when_named === named);
    const ownNames = new Set(own.map((m) => m.name));
    factor.units.filter((u) => !ownNames.has(u)).forEach((u) => options.push(el("option", { value: u }, u)));
    own.forEach((m) => options.push(el("option", { value: m.name }, `${m.name} (${m.size} ${factor.unit})`)));
  }
  select.replaceChildren(...options);
}

function choose(name) {
  const input = $("#factor-input");
  const factor = factorNamed(name);
  $$(".choice").forEach((b) => b.setAttribute("aria-selected", String(factor !== undefined && b.dataset.key === factor.key)));
  const chosen = $("#factor-chosen");
  if (factor) {
    const named = name.trim().toLowerCase();
    chosen.textContent = `${factor.label}, in ${factor.unit}` + (factor.needs_unit ? "" : " (a count)");
    unitOptions(factor, named);
  } else if (name.trim()) {
    chosen.textContent = `"${name.trim()}" is not in the list: it will be checked when you add it.`;
    unitOptions(null);
  } else {
    chosen.textContent = "Pick from the list or type a name.";
    unitOptions(null);
  }
  filter(input.value);
}

function filter(text) {
  const words = text.trim().toLowerCase();
  const picked = factorNamed(text);
  $$(".choice").forEach((b) => { b.hidden = Boolean(words) && !b.dataset.names.includes(words) && !(picked && b.dataset.key === picked.key); });
  $$(".quick-add").forEach((b) => {
    b.hidden = words ? !b.dataset.names.includes(words) && !(picked && b.dataset.factor === picked.key) : !b.dataset.popular;
  });
}

function formPayload(form) {
  const data = Object.fromEntries(new FormData(form));
  const payload = { factor: data.factor.trim(), amount: data.amount.trim() || null, unit: data.unit || null, note: data.note || null };
  if (data.time) payload.time = data.time.length === 16 ? data.time + ":00" : data.time;
  // A new id for every new entry: two identical glasses of water are two entries.
  if (!data.entry_id) payload.entry_id = newId();
  return payload;
}

async function saveIntake(payload, entryId) {
  const url = entryId ? "/api/intake/" + encodeURIComponent(entryId) : "/api/intake";
  return getJSON(url, { method: entryId ? "PUT" : "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

async function preview() {
  const form = $("#intake-form");
  const data = formPayload(form);
  const box = $("#intake-preview");
  if (!data.factor || (!data.amount && !data.unit)) { box.textContent = ""; return; }
  const query = new URLSearchParams({ factor: data.factor, amount: data.amount || "", unit: data.unit || "" });
  try {
    const checked = await getJSON("/api/intake/check?" + query);
    box.textContent = "= " + checked.shown.split(" = ").pop();
    box.className = "muted";
  } catch (error) {
    box.textContent = error.message;
    box.className = "error";
  }
}

function offerSuggestions(error, payload, entryId) {
  const suggestions = (error.body && error.body.suggestions) || [];
  if (!suggestions.length) { say(error.message, false); return; }
  const row = el("div", { class: "choices-row" });
  suggestions.forEach((key) => {
    const factor = factors.find((f) => f.key === key);
    const use = el("button", { type: "button", class: "small use-suggestion" }, `Use ${factor ? factor.label.toLowerCase() : key}`);
    use.addEventListener("click", () => { $("#factor-input").value = key; choose(key); submit({ ...payload, factor: key }, entryId); });
    row.appendChild(use);
  });
  const own = el("button", { type: "button", class: "small secondary new-factor" }, `No, "${payload.factor}" is a new factor`);
  own.addEventListener("click", () => submit({ ...payload, new_factor: true }, entryId));
  row.appendChild(own);
  say(error.message.split("?")[0].replace(/^unknown factor /, "Not known: ") + "?", false, [row]);
}

async function submit(payload, entryId) {
  try {
    const saved = await saveIntake(payload, entryId);
    const shown = saved.shown || `${saved.amount} ${saved.unit} ${saved.factor}`;
    say(`Saved: ${shown}.`, true);
    setTimeout(() => location.reload(), 500);
  } catch (error) { offerSuggestions(error, payload, entryId); }
}

function askBeforeDelete(button) {
  const row = button.closest("tr");
  const cell = button.closest("td");
  const keep = Array.from(cell.childNodes);
  const box = el("span", { class: "confirm" }, "Delete this entry? ");
  const yes = el("button", { type: "button", class: "small danger confirm-delete" }, "Yes, delete");
  const no = el("button", { type: "button", class: "small secondary keep" }, "Keep");
  box.append(yes, no);
  cell.replaceChildren(box);
  no.addEventListener("click", () => cell.replaceChildren(...keep));
  yes.addEventListener("click", async () => {
    try { await getJSON("/api/intake/" + encodeURIComponent(row.dataset.entry), { method: "DELETE" }); row.remove(); say("Deleted.", true); }
    catch (error) { cell.replaceChildren(...keep); say(error.message, false); }
  });
}

function setUpIntake() {
  const form = $("#intake-form");
  if (!form) return;
  factors = JSON.parse($("#factor-data").textContent);
  const input = $("#factor-input");
  filter("");
  let previewTimer = null;
  const later = () => { clearTimeout(previewTimer); previewTimer = setTimeout(preview, 300); };
  input.addEventListener("input", () => { choose(input.value); later(); });
  $("#amount-input").addEventListener("input", later);
  $("#unit-select").addEventListener("change", later);
  $$(".choice").forEach((button) => button.addEventListener("click", () => {
    input.value = button.dataset.key;
    choose(button.dataset.key);
    $("#amount-input").focus();
  }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(formPayload(form), form.entry_id.value);
  });
  $("#intake-cancel").addEventListener("click", () => location.reload());
  $$(".quick-add").forEach((button) => button.addEventListener("click", () => {
    submit({ factor: button.dataset.factor, amount: Number(button.dataset.amount), unit: button.dataset.unit, entry_id: newId() });
  }));
  $$("#intake-log .delete").forEach((button) => button.addEventListener("click", () => askBeforeDelete(button)));
  $$("#intake-log .edit").forEach((button) => button.addEventListener("click", () => {
    const row = button.closest("tr");
    input.value = row.dataset.factor;
    choose(row.dataset.factor);
    form.amount.value = row.dataset.amount;
    form.unit.value = row.dataset.unit;
    form.note.value = row.dataset.note;
    form.time.value = row.dataset.time.replace(" ", "T");
    form.entry_id.value = row.dataset.entry;
    $("#intake-submit").textContent = "Save changes";
    $("#intake-cancel").hidden = false;
    say("Editing: change it and press Save changes.", true);
    form.scrollIntoView({ behavior: "smooth" });
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
  setUpIntake();
  const print = $("#print-button");
  if (print) print.addEventListener("click", () => window.print());
  listen();
});
