// ccd's dashboard: the apps table and an app's page, from ccd's REST API,
// kept live by its event stream. No framework and no CDN: this file is all.
"use strict";

let csrf = null;
let stream = null;
let after = [];          // the `after` of each page shown, for "previous"
let view = { page: null, app: null };

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/yaml";
  const r = await fetch(path, { method, headers, body, credentials: "same-origin" });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error || r.status) + (data.problems ? "\n" + data.problems.join("\n") : ""));
  return data;
}

async function showApps(from) {
  view = { page: from || "", app: null };
  $("where").textContent = "apps";
  const page = await api("GET", "/v1/apps?limit=50" + (from ? "&after=" + encodeURIComponent(from) : ""));
  const rows = page.apps.map((a) => `<tr data-app="${esc(a.name)}">
    <td><a href="#/apps/${esc(a.name)}">${esc(a.name)}</a></td>
    <td class="phase ${esc(a.phase)}">${esc(a.phase || "-")}</td>
    <td>${esc(a.version || "-")}</td>
    <td>${a.instances.healthy}/${a.instances.total}</td>
    <td>${a.endpoint ? esc(a.endpoint) : "-"}</td>
    <td>${a.lastRollout ? esc(a.lastRollout.version + " " + a.lastRollout.state + " (" + a.lastRollout.failedProbes + " of " + a.lastRollout.probes + " probes failed)") : "-"}</td>
  </tr>`).join("");
  $("main").innerHTML = `<table id="apps"><thead><tr><th>APP</th><th>PHASE</th><th>VERSION</th><th>HEALTHY</th><th>ENDPOINT</th><th>LAST ROLLOUT</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="6">no apps yet: PUT a spec to /v1/apps/NAME, or drop one into the specs folder</td></tr>'}</tbody></table>
    <p>${after.length ? '<button id="prev">previous</button>' : ""}${page.next ? '<button id="next">next</button>' : ""}</p>`;
  if (page.next) $("next").onclick = () => { after.push(from || ""); showApps(page.next); };
  if (after.length) $("prev").onclick = () => showApps(after.pop());
}

async function showApp(name) {
  view = { page: null, app: name };
  $("where").textContent = name;
  const [app, rollouts, events] = await Promise.all([
    api("GET", "/v1/apps/" + name),
    api("GET", "/v1/apps/" + name + "/rollouts").catch(() => ({ rollout: null, history: [] })),
    api("GET", "/v1/events?limit=50&app=" + name),
  ]);
  const s = app.status || {};
  const r = rollouts.rollout;
  const steps = r ? (r.steps || []).map((st) => `<tr><td>${esc(st.name || (st.plan && st.plan.name))}</td><td>${esc(st.probes)}</td><td>${esc(st.failedProbes)}</td></tr>`).join("") : "";
  $("main").innerHTML = `
    <section><h2>${esc(name)} <span class="phase ${esc(s.phase)}" id="phase">${esc(s.phase || "-")}</span></h2>
      version ${esc(s.revision ? s.revision.version : "-")} · ${esc((s.endpoints || []).join(" "))}</section>
    <section><h3>Conditions</h3><table>${(s.conditions || []).map((c) => `<tr><td>${esc(c.type || c.kind)}</td><td>${esc(c.status)}</td><td>${esc(c.reason)}</td><td>${esc(c.message)}</td></tr>`).join("")}</table></section>
    <section><h3>Instances</h3><table>${(s.instances || []).map((i) => `<tr><td>${esc(i.name)}</td><td>${esc(i.version)}</td><td>${esc(i.status)}</td><td>${esc(i.health)}</td></tr>`).join("") || "<tr><td>none</td></tr>"}</table></section>
    <section id="rollout"><h3>Rollout</h3>${r ? `<p>version ${esc(r.to.version)}${r.from ? " from " + esc(r.from.version) : ""}, ${esc(r.strategy)}: <b id="rollout-state">${esc(r.state)}</b>, step ${esc(r.step && r.step.name)}; ${esc(r.probes.failed)} of ${esc(r.probes.sent)} probes failed</p>
      <table><tr><th>STEP</th><th>PROBES</th><th>FAILED</th></tr>${steps}</table>` : "<p>no rollout yet</p>"}
      <p><button data-ask="pause">pause</button><button data-ask="resume">resume</button><button data-ask="promote">promote</button><button data-ask="abort">abort</button> <span id="asked"></span></p></section>
    <section><h3>Events</h3><table id="events">${events.events.slice().reverse().map(eventRow).join("")}</table></section>
    <section><h3>Plan a spec</h3><textarea id="spec">${esc(app.specYaml || "")}</textarea><p><button id="plan">plan</button></p><pre id="planned"></pre></section>`;
  document.querySelectorAll("button[data-ask]").forEach((b) => {
    b.onclick = async () => {
      try {
        const a = await api("POST", `/v1/apps/${name}/rollout/${b.dataset.ask}`);
        $("asked").textContent = `${b.dataset.ask} asked for the rollout of version ${a.version}`;
        $("asked").className = "";
      } catch (e) { $("asked").textContent = e.message; $("asked").className = "error"; }
    };
  });
  $("plan").onclick = async () => {
    try { $("planned").textContent = JSON.stringify(await api("POST", `/v1/apps/${name}/plan`, $("spec").value), null, 2); $("planned").className = ""; }
    catch (e) { $("planned").textContent = e.message; $("planned").className = "error"; }
  };
}

function eventRow(e) {
  return `<tr><td>${esc(new Date(e.at_ms).toLocaleTimeString())}</td><td>${esc(e.kind)}</td><td>${esc(e.reason)}</td><td>${esc(e.message)}</td></tr>`;
}

let refreshing = null;
function refreshSoon() {
  // Bursts of events refresh once.
  clearTimeout(refreshing);
  refreshing = setTimeout(route, 150);
}

function live() {
  // EventSource reconnects by itself, sending Last-Event-ID: the server
  // replays what was missed. The heartbeat keeps a quiet stream open.
  stream = new EventSource("/v1/events/stream");
  stream.onopen = () => { $("live").textContent = "live"; $("live").className = ""; };
  stream.onerror = () => { $("live").textContent = "reconnecting…"; $("live").className = "down"; };
  stream.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    if (view.app === null || view.app === e.app) refreshSoon();
  });
}

async function route() {
  const m = location.hash.match(/^#\/apps\/([a-z0-9-]+)$/);
  try {
    if (m) await showApp(m[1]); else await showApps(view.page);
  } catch (e) {
    $("main").innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

async function start() {
  try {
    csrf = (await api("GET", "/v1/session")).csrf;
  } catch (e) {
    $("main").innerHTML = `<p class="error">Not logged in: open the dashboard URL that ccd up printed (dashboard: …). ${esc(e.message)}</p>`;
    $("live").textContent = "";
    return;
  }
  window.onhashchange = () => { after = []; view.page = null; route(); };
  await route();
  live();
}

start();
