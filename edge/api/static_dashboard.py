"""The dashboard's static assets: one HTML page with its stylesheet and script inline.

The page holds no data: the script fetches /v1/status, /v1/app, /v1/workflows and
/v1/workflows/{id} every two seconds and builds the DOM with ``textContent`` only
(workflow ids, inputs, outputs and errors are user data). The inline ``<style>``
and ``<script>`` are allowed by their SHA-256 hashes in the Content-Security-Policy
(see dashboard.py), so no inline handler, ``eval`` or foreign origin can run.
"""

from __future__ import annotations

STATUSES = ("PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED", "CANCELLED")

CSS = r"""
:root{--bg:#f5f6f8;--panel:#fff;--fg:#1d2330;--muted:#5d6677;--line:#dfe3ea;--head:#eef1f5;
--accent:#2457c5;--sel:#e6eefc;--ok:#1d7a46;--okbg:#e3f4ea;--warn:#8a5a00;--warnbg:#fff3d6;
--bad:#b42318;--badbg:#fde8e6;--info:#1f5fbf;--infobg:#e4eefc;--sleep:#6b3fb8;--sleepbg:#efe8fb;
--gray:#596273;--graybg:#eceef2;--mono:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--panel:#1c2027;--fg:#e3e7ee;
--muted:#98a2b3;--line:#2e343e;--head:#232831;--accent:#7aa7ff;--sel:#233250;--ok:#5fd08d;
--okbg:#18301f;--warn:#f3c35b;--warnbg:#372c10;--bad:#ff8a80;--badbg:#3b1b19;--info:#8db7ff;
--infobg:#1b2a44;--sleep:#c3a3ff;--sleepbg:#2c2140;--gray:#b0b8c6;--graybg:#2a2f38}}
*{box-sizing:border-box}
[hidden]{display:none!important}
html,body{margin:0;background:var(--bg);color:var(--fg)}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif}
.mono,pre,code{font-family:var(--mono);font-size:12.5px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
button,select,input{font:inherit;color:inherit}
button{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:3px 10px;
cursor:pointer}
button:hover:not(:disabled){border-color:var(--accent)}
button:disabled{opacity:.45;cursor:default}
select,input{background:var(--panel);border:1px solid var(--line);border-radius:6px;
padding:3px 6px}
header.top{display:flex;align-items:center;gap:14px;padding:10px 20px;background:var(--panel);
border-bottom:1px solid var(--line);position:sticky;top:0;z-index:2}
.brand{font-weight:700;font-size:17px;letter-spacing:.02em}
.node-line{color:var(--muted);display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.node-line b{color:var(--fg);font-weight:600}
.spacer{flex:1}
.refresh{color:var(--muted);font-size:12.5px;display:flex;align-items:center;gap:6px}
.dot{width:8px;height:8px;border-radius:50%;background:var(--ok);display:inline-block}
.dot.stale{background:var(--bad)}.dot.paused{background:var(--gray)}
main{padding:16px 20px 8px;display:flex;flex-direction:column;gap:16px;max-width:1600px;
margin:0 auto}
.banner{margin:12px 20px 0;padding:8px 12px;border-radius:8px;background:var(--badbg);
color:var(--bad);border:1px solid var(--bad)}
.banner.warn{background:var(--warnbg);color:var(--warn);border-color:var(--warn)}
.token-form{margin:12px 20px 0;padding:10px 12px;border-radius:8px;background:var(--panel);
border:1px solid var(--line);display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.token-form .hint{color:var(--muted);font-size:12.5px}
.counts{display:grid;grid-template-columns:repeat(8,minmax(0,1fr));gap:10px}
.tile{display:flex;flex-direction:column;align-items:flex-start;gap:2px;padding:10px 12px;
border-radius:10px;background:var(--panel);border:1px solid var(--line);
border-top:4px solid var(--gray);text-align:left}
.tile .n{font-size:24px;font-weight:650;line-height:1.1;font-variant-numeric:tabular-nums}
.tile .l{font-size:11.5px;letter-spacing:.06em;color:var(--muted)}
.tile.active{outline:2px solid var(--accent);outline-offset:-1px}
.tile.zero .n{color:var(--muted);font-weight:400}
.tile.st-RUNNING{border-top-color:var(--info)}.tile.st-SLEEPING{border-top-color:var(--sleep)}
.tile.st-WAITING{border-top-color:var(--warn)}.tile.st-SUCCEEDED{border-top-color:var(--ok)}
.tile.st-FAILED{border-top-color:var(--bad)}.tile.st-CANCELLED{border-top-color:var(--muted)}
.tile.total{border-top-color:var(--fg)}
.tile.st-FAILED:not(.zero) .n{color:var(--bad)}
.health{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.4fr);gap:16px}
.work{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.1fr);gap:16px;
align-items:start}
.work.single{grid-template-columns:minmax(0,1fr)}
@media (max-width:1100px){.health,.work{grid-template-columns:minmax(0,1fr)}
.counts{grid-template-columns:repeat(4,minmax(0,1fr))}}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px 14px;
min-width:0}
.panel h2{font-size:14px;margin:0 0 8px;letter-spacing:.02em}
.panel h3{font-size:13px;margin:14px 0 6px;color:var(--muted);letter-spacing:.04em}
.panel-head{display:flex;align-items:center;gap:8px;flex-wrap:wrap;margin-bottom:8px}
.panel-head h2{margin:0 8px 0 0}
dl.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px;margin:0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
.chips{display:flex;gap:6px;flex-wrap:wrap;margin-bottom:8px}
.chip{padding:1px 9px;border-radius:999px;font-size:12.5px;background:var(--graybg);
color:var(--gray)}
.chip.ok{background:var(--okbg);color:var(--ok)}.chip.warn{background:var(--warnbg);
color:var(--warn)}.chip.bad{background:var(--badbg);color:var(--bad)}
.note{padding:8px 10px;border-radius:8px;background:var(--warnbg);color:var(--warn)}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:11.5px;letter-spacing:.05em;color:var(--muted);background:var(--head);
font-weight:600;white-space:nowrap}
#wf-rows tr{cursor:pointer}
#wf-rows tr:hover{background:var(--head)}
#wf-rows tr.sel{background:var(--sel)}
#wf-table,#steps{table-layout:fixed}
#wf-table th:nth-child(1){width:25%}#wf-table th:nth-child(2){width:15%}
#wf-table th:nth-child(3){width:122px}#wf-table th:nth-child(5){width:80px}
#steps th:nth-child(1){width:34px}#steps th:nth-child(2){width:23%}
#steps th:nth-child(3){width:122px}#steps th:nth-child(4){width:84px}
#steps th:nth-child(5){width:80px}#steps th:nth-child(6){width:17%}
#wf-rows td,td.out,td.step-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.when,td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
td.num{text-align:right}th.num{text-align:right}
td.what{color:var(--muted)}
td.what.err{color:var(--bad)}
.badge{display:inline-block;padding:0 8px;border-radius:999px;font-size:11.5px;font-weight:600;
letter-spacing:.03em;background:var(--graybg);color:var(--gray);white-space:nowrap}
.badge.st-RUNNING{background:var(--infobg);color:var(--info)}
.badge.st-SLEEPING{background:var(--sleepbg);color:var(--sleep)}
.badge.st-WAITING{background:var(--warnbg);color:var(--warn)}
.badge.st-SUCCEEDED{background:var(--okbg);color:var(--ok)}
.badge.st-FAILED{background:var(--badbg);color:var(--bad)}
.pager{display:flex;gap:10px;align-items:center;justify-content:flex-end;margin-top:8px;
color:var(--muted);font-size:12.5px}
.empty{padding:18px 8px;color:var(--muted);text-align:center}
.detail-head{display:flex;align-items:flex-start;gap:10px}
.detail-head h2{flex:1;margin:0;font-family:var(--mono);font-size:14px;overflow-wrap:anywhere}
.sub{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:6px 0 10px;color:var(--muted)}
.callout{padding:8px 10px;border-radius:8px;margin:8px 0;background:var(--graybg);
color:var(--fg);border-left:4px solid var(--gray)}
.callout.WAITING{background:var(--warnbg);border-left-color:var(--warn)}
.callout.SLEEPING{background:var(--sleepbg);border-left-color:var(--sleep)}
.callout.RUNNING,.callout.PENDING{background:var(--infobg);border-left-color:var(--info)}
.callout.err,.callout.blocked{background:var(--badbg);border-left-color:var(--bad)}
.callout b{font-weight:650}
pre{margin:0;padding:6px 8px;background:var(--head);border-radius:6px;max-height:180px;
overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
.io{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:10px}
.io h3{margin-top:4px}
#steps td{font-size:13px}
#steps tr.errrow td{border-top:0;color:var(--bad);font-family:var(--mono);font-size:12px;
padding-top:0;overflow-wrap:anywhere}
#steps tr.has-err td{border-bottom:0}
td.bar{padding-top:10px}
.track{position:relative;height:10px;background:var(--head);border-radius:3px}
.seg{position:absolute;top:0;height:10px;border-radius:3px;background:var(--ok);min-width:3px}
.seg.RUNNING{background:var(--info)}.seg.FAILED{background:var(--bad)}
.seg.k-sleep{background:var(--sleep)}.seg.k-wait_event,.seg.k-wait_child{background:var(--warn)}
.seg.RUNNING.k-sleep,.seg.RUNNING.k-wait_event{opacity:.55}
td.out{color:var(--muted)}
.kind{color:var(--muted);font-family:system-ui,sans-serif;font-size:11.5px;margin-left:2px}
footer{color:var(--muted);font-size:12.5px;padding:6px 20px 18px;max-width:1600px;margin:0 auto}
footer a{margin-right:12px}
"""

JS = r"""
"use strict";
(() => {
  const STATUSES = ["PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED",
                    "CANCELLED"];
  const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  const POLL_MS = 2000;
  const DEFAULT_LIMIT = 25;
  const TOKEN_KEY = "edge.apiToken";

  const $ = (id) => document.getElementById(id);
  // What the user looks at; mirrored in the URL fragment (#status=&workflow=&limit=&id=).
  const view = { status: "", workflow: "", limit: DEFAULT_LIMIT, id: null };
  const st = {
    token: null, cursors: [null], nextCursor: null, paused: false, timer: 0, busy: false,
    again: false, skewMs: 0, names: null, seen: { status: "", list: "", detail: "" },
    detail: null, lastOk: 0, authNeeded: false,
  };

  // ---- DOM helpers: text only, never HTML ----------------------------------------

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k === "data") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  const known = (s) => (STATUSES.includes(s) ? s : "other");
  const badge = (s) => h("span", { class: "badge st-" + known(s), text: s });
  const clip = (s, n) => (s.length <= n ? s : s.slice(0, n - 1) + "\u2026");
  function json(v) {
    try { return JSON.stringify(v); } catch (e) { return String(v); }
  }
  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }
  function errText(e) {
    if (e && typeof e === "object" && !Array.isArray(e)) {
      return (e.type || "Error") + ": " + (e.message === undefined ? "" : String(e.message));
    }
    return json(e);
  }

  // ---- time ----------------------------------------------------------------------

  function ms(v) {  // ISO 8601 string or Unix seconds -> epoch ms
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return v * 1000;
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  const now = () => Date.now() + st.skewMs;
  const pad = (n) => String(n).padStart(2, "0");
  function clock(t) {
    if (t === null) return "\u2013";
    const d = new Date(t);
    const hms = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    if (d.toDateString() === new Date(now()).toDateString()) return hms;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hms;
  }
  function dur(sec) {
    if (sec === null || !Number.isFinite(sec)) return "\u2013";
    sec = Math.max(0, sec);
    if (sec < 0.0001) return "< 0.1 ms";
    if (sec < 1) return (sec * 1000).toFixed(sec < 0.01 ? 1 : 0) + " ms";
    if (sec < 60) return sec.toFixed(sec < 10 ? 2 : 1) + " s";
    if (sec < 3600) return Math.floor(sec / 60) + " min " + Math.floor(sec % 60) + " s";
    if (sec < 86400) return Math.floor(sec / 3600) + " h " + Math.floor((sec % 3600) / 60) + " min";
    return Math.floor(sec / 86400) + " d " + Math.floor((sec % 86400) / 3600) + " h";
  }
  function rel(t) {
    if (t === null) return "";
    const s = (t - now()) / 1000;
    if (Math.abs(s) < 1) return "now";
    return s > 0 ? "in " + dur(s) : dur(-s) + " ago";
  }
  const timeEl = (iso) => h("span", { title: iso || "", text: clock(ms(iso)) });

  // ---- the URL fragment and the token --------------------------------------------

  function loadToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }
  function saveToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives in memory only */ }
  }
  function readFragment() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (p.has("token")) {  // #token=... : keep it for this tab, drop it from the address bar
      st.token = p.get("token") || null;
      saveToken(st.token);
    }
    const s = (p.get("status") || "").toUpperCase();
    view.status = STATUSES.includes(s) ? s : "";
    view.workflow = p.get("workflow") || "";
    const n = Number(p.get("limit"));
    view.limit = Number.isInteger(n) && n >= 1 && n <= 1000 ? n : DEFAULT_LIMIT;
    view.id = p.get("id") || null;
    writeFragment();
  }
  function fragment(id) {
    const p = new URLSearchParams();
    if (view.status) p.set("status", view.status);
    if (view.workflow) p.set("workflow", view.workflow);
    if (view.limit !== DEFAULT_LIMIT) p.set("limit", String(view.limit));
    if (id) p.set("id", id);
    const text = p.toString();
    return text ? "#" + text : "";
  }
  function writeFragment() {
    const want = fragment(view.id);
    if (location.hash !== want) {
      history.replaceState(null, "", location.pathname + location.search + want);
    }
  }

  // ---- the API ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, hint) {
      super(message);
      this.status = status; this.code = code; this.hint = hint || "";
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (st.token) headers.Authorization = "Bearer " + st.token;
    let res;
    try {
      res = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiError(0, "unreachable", "the node does not answer",
                         "is it running? the page retries every 2 s");
    }
    const date = Date.parse(res.headers.get("Date") || "");
    if (!Number.isNaN(date)) {  // the Date header has 1 s resolution: only fix real skew
      const skew = date - Date.now();
      st.skewMs = Math.abs(skew) > 2000 ? skew : 0;
    }
    const text = await res.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) { body = null; }
    if (!res.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(res.status, err.code || "http_" + res.status,
                         err.message || res.statusText || "request failed", err.hint);
    }
    if (body === null) throw new ApiError(res.status, "bad_response", "not JSON", "");
    return { body, text };
  }

  // ---- node, counts, replication -----------------------------------------------------

  function renderStatus(s) {
    const line = $("node-line");
    line.replaceChildren(
      h("span", null, "app ", h("b", { text: s.app })),
      h("span", null, "node ", h("b", { class: "mono", text: s.node_id || "(booting)" })),
      h("span", { class: "chip " + (s.ready ? "ok" : "warn"), id: "node-state", text: s.state }),
      h("span", { class: "chip " + (s.leader ? "ok" : "warn"), id: "leader",
                  text: s.leader ? "leader" : "not leader" }),
    );
    document.title = "edge: " + s.app + (s.node_id ? " @ " + s.node_id : "");

    const counts = s.workflows || {};
    let total = 0;
    for (const name of STATUSES) {
      const tile = document.querySelector('.tile[data-status="' + name + '"]');
      const n = Number(counts[name] || 0);
      total += n;
      tile.querySelector(".n").textContent = String(n);
      tile.classList.toggle("zero", n === 0);
    }
    const all = document.querySelector('.tile[data-status=""]');
    all.querySelector(".n").textContent = String(total);

    const w = s.workers || {};
    $("node-info").replaceChildren(...kv([
      ["State", s.state + (s.ready ? ", accepting work" : ", not accepting work")],
      ["Leader", s.leader ? "yes: holds the database lock" + (s.replication ? " and the lease" : "")
                          : "no"],
      ["Node id", s.node_id || "\u2013"],
      ["Process", "pid " + s.pid],
      ["Data dir", s.data_dir],
      ["Durability", s.durability],
      ["Workers", w.size === undefined ? "\u2013"
                    : w.busy + " busy of " + w.size + ", " + w.queued + " queued"],
    ]));
    renderReplication(s.replication, s);
  }

  function kv(pairs) {
    const out = [];
    for (const [k, v] of pairs) {
      if (v === null || v === undefined) continue;
      out.push(h("dt", { text: k }), h("dd", null, v));
    }
    return out;
  }

  function renderReplication(r, s) {
    const box = $("repl-info");
    if (!r) {
      box.replaceChildren(h("div", { class: "note", id: "no-replica" },
        h("b", { text: "No replica. " }),
        "Losing this disk loses every workflow: run the node with --replica s3://\u2026 " +
        "or file:///\u2026"));
      return;
    }
    const chips = [];
    const sc = r.sidecar;
    if (r.fenced) chips.push(["bad", "fenced: " + r.fenced]);
    chips.push(r.holding_lease ? ["ok", "holds the lease"] : ["warn", "standby: no lease"]);
    if (sc) chips.push(sc.up ? ["ok", "sidecar up"] : ["bad", "sidecar down"]);
    const lag = Number(r.lag_seconds || 0);
    chips.push([lag > 60 ? "bad" : lag > 10 ? "warn" : "ok",
                lag > 0 ? "lag " + dur(lag) : "replica caught up"]);
    if (r.blocked_on_replication) {
      chips.push(["warn", r.blocked_on_replication + " step(s) wait for the replica"]);
    }
    const lease = r.lease || {};
    const leaseText = r.holding_lease
      ? "held by this node (epoch " + r.epoch + ")"
      : lease.holder ? "held by " + lease.holder + " (epoch " + lease.epoch + ")" : "free";
    const pairs = [
      ["Replica", h("span", { class: "mono", text: r.replica || "\u2013" })],
      ["Epoch", r.epoch === null || r.epoch === undefined ? "\u2013" : String(r.epoch)],
      ["Lease", leaseText],
      ["Lag", lag > 0 ? dur(lag) + " (age of the oldest commit not yet in the replica)"
                      : "none: every commit is in the replica"],
    ];
    if (sc) {
      const last = ms(sc.last_sync_at);
      pairs.push(["Sidecar", (sc.up ? "up" : "down") + (sc.pid ? ", pid " + sc.pid : "") +
                            ", " + (sc.restarts || 0) + " restart(s)"]);
      pairs.push(["Last sync", last === null ? "never" : clock(last) + " (" + rel(last) + ")"]);
      if (sc.last_error) {
        pairs.push(["Last error", h("span", { class: "mono", text: sc.last_error })]);
      }
    } else {
      pairs.push(["Sidecar", "external (not supervised by this node)"]);
    }
    if (r.restored_from_epoch !== null && r.restored_from_epoch !== undefined) {
      pairs.push(["Restored from", "epoch " + r.restored_from_epoch]);
    }
    pairs.push(["Fenced", r.fenced ? String(r.fenced) : "no"]);
    box.replaceChildren(
      h("div", { class: "chips", id: "repl-chips" },
        chips.map(([cls, text]) => h("span", { class: "chip " + cls, text }))),
      h("dl", { class: "kv" }, kv(pairs)));
  }

  // ---- the workflow list ---------------------------------------------------------------

  function stateText(w) {  // one line: why it is not finished, or how it ended
    if (w.blocked_on) return { text: "blocked: " + w.blocked_on, err: true };
    if (w.status === "WAITING") {
      const wf = w.waiting_for || "";
      if (wf.startsWith("child:")) return { text: "waiting for child " + wf.slice(6) };
      return { text: wf ? "waiting for event \u201c" + wf + "\u201d" : "waiting" };
    }
    if (w.status === "SLEEPING") {
      return { text: "sleeping until " + clock(ms(w.wake_at)) };
    }
    if (w.status === "FAILED" && w.error) return { text: errText(w.error), err: true };
    if (w.status === "SUCCEEDED") return { text: clip(json(w.output), 120) };
    if (w.status === "PENDING") return { text: "queued" + (w.queue ? " on " + w.queue : "") };
    return { text: "" };
  }

  function renderList(page) {
    const rows = page.workflows.map((w) => {
      const what = stateText(w);
      return h("tr", { class: w.id === view.id ? "sel" : null, data: { id: w.id },
                       onclick: (ev) => { if (!ev.defaultPrevented) select(w.id); } },
        h("td", { class: "mono id", title: w.id },
          h("a", { href: fragment(w.id), text: w.id,
                   onclick: (ev) => { ev.preventDefault(); select(w.id); } })),
        h("td", { text: w.workflow }),
        h("td", null, badge(w.status)),
        h("td", { class: "what" + (what.err ? " err" : ""), title: what.text, text: what.text }),
        h("td", { class: "when" }, timeEl(w.updated_at)));
    });
    $("wf-rows").replaceChildren(...rows);
    $("wf-empty").hidden = rows.length > 0;
    $("wf-empty").textContent = view.status || view.workflow
      ? "no workflows match these filters" : "no workflows yet";
    st.nextCursor = page.next_cursor || null;
    $("older").disabled = !st.nextCursor;
    $("newer").disabled = st.cursors.length <= 1;
    const pageNo = st.cursors.length;
    $("page-info").textContent = "page " + pageNo + " \u00b7 " + rows.length + " shown";
  }

  function markSelected() {
    for (const tr of $("wf-rows").children) {
      tr.classList.toggle("sel", tr.dataset.id === view.id);
    }
  }

  function renderNames(names) {
    const sel = $("f-workflow");
    const opts = [h("option", { value: "", text: "all workflows" })];
    const list = names.slice();
    if (view.workflow && !list.includes(view.workflow)) list.push(view.workflow);
    for (const n of list) opts.push(h("option", { value: n, text: n }));
    sel.replaceChildren(...opts);
    sel.value = view.workflow;
  }

  // ---- one workflow's timeline ---------------------------------------------------------

  function renderDetail(d) {
    const box = $("detail");
    const closeBtn = h("button", { type: "button", id: "detail-close", title: "close",
                                   text: "\u00d7", onclick: () => select(null) });
    const kids = [h("div", { class: "detail-head" },
                    h("h2", { id: "detail-title", text: d.id }), closeBtn)];
    kids.push(h("div", { class: "sub" }, badge(d.status), h("b", { text: d.workflow }),
                d.queue ? "queue " + d.queue : null));
    const state = stateCallout(d);
    if (state) kids.push(state);
    if (d.error) {
      kids.push(h("div", { class: "callout err", id: "detail-error" },
                  h("b", { text: "Error " }), errText(d.error)));
    }
    const t0 = ms(d.created_at);
    const end = FINAL.has(d.status) ? ms(d.updated_at) : now();
    const meta = [
      ["Created", h("span", null, timeEl(d.created_at), " (" + rel(t0) + ")")],
      ["Updated", timeEl(d.updated_at)],
      [FINAL.has(d.status) ? "Took" : "Age", dur((end - t0) / 1000)],
    ];
    if (d.parent_id) {
      meta.push(["Parent", h("a", {
        href: fragment(d.parent_id), class: "mono", text: d.parent_id,
        onclick: (ev) => { ev.preventDefault(); select(d.parent_id); } })]);
    }
    kids.push(h("dl", { class: "kv" }, kv(meta)));
    const inp = d.input || {};
    const args = inp.args || [];
    const kwargs = inp.kwargs || {};
    const inputView = args.length && Object.keys(kwargs).length ? inp
      : args.length ? args : kwargs;
    kids.push(h("div", { class: "io" },
      h("div", null, h("h3", { text: "INPUT" }),
        h("pre", { id: "detail-input" }, pretty(inputView))),
      h("div", null, h("h3", { text: "OUTPUT" }),
        h("pre", { id: "detail-output" },
          d.status === "SUCCEEDED" ? pretty(d.output) : "\u2013"))));
    kids.push(h("h3", { text: "TIMELINE" }));
    kids.push(stepsTable(d, t0, end));
    box.replaceChildren(...kids);
  }

  function stateCallout(d) {
    const wake = ms(d.wake_at);
    if (d.blocked_on) {
      return h("div", { class: "callout blocked", id: "detail-state" },
               h("b", { text: "Blocked " }), "on " + d.blocked_on);
    }
    if (d.status === "WAITING") {
      const wf = d.waiting_for || "";
      const parts = [h("b", { text: "Waiting " })];
      if (wf.startsWith("child:")) {
        const cid = wf.slice(6);
        parts.push("for child workflow ", h("a", {
          href: fragment(cid), class: "mono", text: cid,
          onclick: (ev) => { ev.preventDefault(); select(cid); } }));
      } else if (wf) {
        parts.push("for event ", h("code", { class: "wait-name", text: wf }));
      }
      if (wake !== null) parts.push(" \u00b7 times out at " + clock(wake) + " (" + rel(wake) + ")");
      return h("div", { class: "callout WAITING", id: "detail-state" }, parts);
    }
    if (d.status === "SLEEPING") {
      return h("div", { class: "callout SLEEPING", id: "detail-state" },
               h("b", { text: "Sleeping " }),
               "until " + clock(wake) + (wake === null ? "" : " (" + rel(wake) + ")"));
    }
    if (d.status === "PENDING") {
      return h("div", { class: "callout PENDING", id: "detail-state" },
               h("b", { text: "Pending " }),
               "waiting for a worker" + (d.queue ? " or a slot on queue " + d.queue : ""));
    }
    if (d.status === "RUNNING") {
      return h("div", { class: "callout RUNNING", id: "detail-state" },
               h("b", { text: "Running" }));
    }
    return null;
  }

  function stepOutput(s) {
    if (s.kind === "sleep" && typeof s.output === "number") {
      return "until " + clock(s.output * 1000);
    }
    if (s.kind === "wait_event" && s.status === "RUNNING") return "waiting";
    if (s.output === null || s.output === undefined) return "";
    return json(s.output);
  }

  function stepsTable(d, t0, end) {
    const steps = d.steps || [];
    if (!steps.length) return h("div", { class: "empty", text: "no steps recorded yet" });
    const span = Math.max(1, end - t0);
    const rows = [];
    for (const s of steps) {
      const a = ms(s.started_at);
      const b = ms(s.finished_at) ?? (s.status === "RUNNING" ? now() : a);
      const secs = a === null || b === null ? null : (b - a) / 1000;
      const kind = String(s.kind).replace(/[^a-z_]/g, "");
      const seg = h("div", { class: "seg " + known(s.status) + " k-" + kind,
                             title: s.name + ": " + dur(secs) });
      if (a !== null && t0 !== null) {
        const left = Math.min(100, Math.max(0, ((a - t0) / span) * 100));
        seg.style.left = left + "%";
        seg.style.width = Math.min(100 - left, Math.max(0, (((b ?? a) - a) / span) * 100)) + "%";
      }
      const out = stepOutput(s);
      rows.push(h("tr", { class: "step" + (s.error ? " has-err" : ""),
                          data: { seq: String(s.seq) } },
        h("td", { class: "num", text: s.seq }),
        h("td", { class: "step-name", title: s.name + " (" + s.kind + ")" },
          h("span", { class: "mono name", text: s.name }),
          s.kind === "step" ? null : [" ", h("span", { class: "kind", text: s.kind })]),
        h("td", null, badge(s.status)),
        h("td", { class: "num attempts", text: s.attempts }),
        h("td", { class: "num", text: dur(secs) }),
        h("td", { class: "bar" }, h("div", { class: "track" }, seg)),
        h("td", { class: "out mono", title: out, text: clip(out, 200) })));
      if (s.error) {
        rows.push(h("tr", { class: "errrow" }, h("td"),
                    h("td", { colspan: "6", text: errText(s.error) })));
      }
    }
    return h("table", { id: "steps" },
      h("thead", null, h("tr", null,
        ["#", "STEP", "STATUS", "ATTEMPTS", "DURATION", "TIMELINE", "OUTPUT"].map(
          (t) => h("th", { class: t === "#" || t === "ATTEMPTS" || t === "DURATION" ? "num" : null,
                           text: t })))),
      h("tbody", null, rows));
  }

  // ---- refresh loop ------------------------------------------------------------------------

  function listPath() {
    const p = new URLSearchParams();
    if (view.status) p.set("status", view.status);
    if (view.workflow) p.set("workflow", view.workflow);
    p.set("limit", String(view.limit));
    const cursor = st.cursors[st.cursors.length - 1];
    if (cursor) p.set("cursor", cursor);
    return "/v1/workflows?" + p.toString();
  }

  async function loadStatus() {
    const { body, text } = await api("/v1/status");
    if (text !== st.seen.status || body.replication) renderStatus(body);
    st.seen.status = text;
  }

  async function loadList() {
    const path = listPath();
    const { body, text } = await api(path);
    const key = path + "\n" + text + "\n" + view.id;
    if (key !== st.seen.list) renderList(body);
    st.seen.list = key;
  }

  async function loadDetail() {
    const id = view.id;
    const box = $("detail");
    let res;
    try {
      res = await api("/v1/workflows/" + encodeURIComponent(id));
    } catch (e) {
      if (e.status !== 404 || id !== view.id) throw e;
      st.seen.detail = "";
      box.replaceChildren(h("div", { class: "detail-head" },
        h("h2", { id: "detail-title", text: id }),
        h("button", { type: "button", id: "detail-close", text: "\u00d7",
                      onclick: () => select(null) })),
        h("div", { class: "empty", text: e.message }));
      return;
    }
    if (id !== view.id) return;  // the user picked another one meanwhile
    const d = res.body;
    // Live parts (ages, running steps, countdowns) change without the data changing.
    if (res.text !== st.seen.detail || !FINAL.has(d.status)) renderDetail(d);
    st.seen.detail = res.text;
  }

  async function loadNames() {
    const { body } = await api("/v1/app");
    st.names = (body.workflows || []).map((w) => w.name).sort();
    renderNames(st.names);
  }

  function showProblem(errors) {
    const banner = $("banner");
    const auth = errors.find((e) => e.status === 401);
    st.authNeeded = Boolean(auth);
    $("token-form").hidden = !auth;
    const e = errors.find((x) => x.status !== 401);
    if (!e && !auth) { banner.hidden = true; return; }
    const shown = e || auth;
    banner.className = "banner" + (shown.status === 503 ? " warn" : "");
    banner.textContent = (shown.status === 503 ? "Node not ready: " : "Cannot load data: ") +
      shown.message + (shown.hint ? " (" + shown.hint + ")" : "");
    banner.hidden = false;
  }

  async function refresh() {
    if (st.busy) { st.again = true; return; }
    st.busy = true;
    clearTimeout(st.timer);
    const jobs = [loadStatus(), loadList()];
    if (view.id) jobs.push(loadDetail());
    if (!st.names) jobs.push(loadNames());
    const results = await Promise.allSettled(jobs);
    const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    for (const e of errors) if (!(e instanceof ApiError)) console.error(e);
    showProblem(errors.filter((e) => e instanceof ApiError));
    if (!errors.length) st.lastOk = Date.now();
    renderPulse(errors.length > 0);
    st.busy = false;
    if (st.again) { st.again = false; refresh(); return; }
    schedule();
  }

  function schedule() {
    clearTimeout(st.timer);
    if (!st.paused) st.timer = setTimeout(refresh, POLL_MS);
  }

  function renderPulse(failed) {
    const dot = h("span", { class: "dot" + (st.paused ? " paused" : failed ? " stale" : "") });
    const text = st.paused ? "paused"
      : st.lastOk ? "updated " + clock(st.lastOk + st.skewMs) : "connecting\u2026";
    $("refresh").replaceChildren(dot, text);
    $("refresh").dataset.ok = String(st.lastOk);
  }

  // ---- user actions ----------------------------------------------------------------------

  function resetPaging() {
    st.cursors = [null];
    st.seen.list = "";
  }

  function select(id) {
    view.id = id;
    st.seen.detail = "";
    writeFragment();
    markSelected();
    $("detail").hidden = !id;
    $("work").classList.toggle("single", !id);
    if (id) {
      $("detail").replaceChildren(h("div", { class: "empty", text: "loading " + id + "\u2026" }));
      refresh();
    }
  }

  function setFilter(status, workflow) {
    view.status = status;
    view.workflow = workflow;
    resetPaging();
    writeFragment();
    syncControls();
    refresh();
  }

  function syncControls() {
    $("f-status").value = view.status;
    const sel = $("f-workflow");
    if (view.workflow && ![...sel.options].some((o) => o.value === view.workflow)) {
      $("f-workflow").append(h("option", { value: view.workflow, text: view.workflow }));
    }
    $("f-workflow").value = view.workflow;
    $("f-limit").value = String(view.limit);
    if ($("f-limit").value !== String(view.limit)) {
      $("f-limit").append(h("option", { value: String(view.limit),
                                        text: view.limit + " per page" }));
      $("f-limit").value = String(view.limit);
    }
    for (const tile of document.querySelectorAll(".tile")) {
      tile.classList.toggle("active", tile.dataset.status === view.status);
    }
  }

  function init() {
    st.token = loadToken();
    readFragment();
    for (const tile of document.querySelectorAll(".tile")) {
      tile.addEventListener("click", () => {
        const s = tile.dataset.status;
        setFilter(view.status === s ? "" : s, view.workflow);
      });
    }
    $("f-status").addEventListener("change", (ev) => setFilter(ev.target.value, view.workflow));
    $("f-workflow").addEventListener("change", (ev) => setFilter(view.status, ev.target.value));
    $("f-limit").addEventListener("change", (ev) => {
      view.limit = Number(ev.target.value) || DEFAULT_LIMIT;
      setFilter(view.status, view.workflow);
    });
    $("older").addEventListener("click", () => {
      if (!st.nextCursor) return;
      st.cursors.push(st.nextCursor);
      st.seen.list = "";
      refresh();
    });
    $("newer").addEventListener("click", () => {
      if (st.cursors.length > 1) st.cursors.pop();
      st.seen.list = "";
      refresh();
    });
    $("pause").addEventListener("click", () => {
      st.paused = !st.paused;
      $("pause").textContent = st.paused ? "Resume" : "Pause";
      renderPulse(false);
      if (st.paused) clearTimeout(st.timer); else refresh();
    });
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      st.token = $("token-input").value.trim() || null;
      $("token-input").value = "";
      saveToken(st.token);
      st.names = null;
      refresh();
    });
    window.addEventListener("hashchange", () => {
      const before = fragment(null);
      readFragment();
      if (fragment(null) !== before) resetPaging();
      syncControls();
      select(view.id);
      refresh();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !st.paused) refresh();
    });
    syncControls();
    select(view.id);
    refresh();
  }

  init();
})();
"""

_TILES = "".join(
    f'<button type="button" class="tile st-{s}" data-status="{s}">'
    f'<span class="n">&ndash;</span><span class="l">{s}</span></button>'
    for s in STATUSES
)
_STATUS_OPTIONS = "".join(f'<option value="{s}">{s}</option>' for s in STATUSES)

HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>edge dashboard</title>
<link rel="icon" href="data:,">
<style>@@CSS@@</style>
</head><body>
<header class="top">
<div class="brand">edge</div>
<div id="node-line" class="node-line">connecting&hellip;</div>
<div class="spacer"></div>
<span id="refresh" class="refresh">connecting&hellip;</span>
<button id="pause" type="button" title="stop refreshing every 2 s">Pause</button>
</header>
<div id="banner" class="banner" role="status" hidden></div>
<form id="token-form" class="token-form" hidden>
<label for="token-input"><b>API token</b></label>
<input id="token-input" type="password" autocomplete="off" size="32">
<button type="submit">Use token</button>
<span class="hint">This node requires a bearer token (EDGE_API_TOKEN). The page keeps it in
this tab only (sessionStorage); open the page as <code>/#token=&hellip;</code> to pass it in
the address.</span>
</form>
<main>
<section id="counts" class="counts" aria-label="workflows by status">
<button type="button" class="tile total" data-status=""><span class="n">&ndash;</span>
<span class="l">ALL</span></button>@@TILES@@
</section>
<section class="health">
<div class="panel" id="node-panel"><h2>Node</h2><dl class="kv" id="node-info"></dl></div>
<div class="panel" id="repl-panel"><h2>Replication &amp; lease</h2><div id="repl-info"></div></div>
</section>
<section id="work" class="work single">
<div class="panel" id="list-panel">
<div class="panel-head"><h2>Workflows</h2>
<select id="f-status" aria-label="status filter"><option value="">all statuses</option>
@@STATUS_OPTIONS@@</select>
<select id="f-workflow" aria-label="workflow filter">
<option value="">all workflows</option></select>
<select id="f-limit" aria-label="page size"><option value="10">10 per page</option>
<option value="25">25 per page</option><option value="50">50 per page</option>
<option value="100">100 per page</option></select>
</div>
<table id="wf-table"><thead><tr><th>ID</th><th>WORKFLOW</th><th>STATUS</th>
<th>STATE / RESULT</th><th>UPDATED</th></tr></thead><tbody id="wf-rows"></tbody></table>
<div id="wf-empty" class="empty" hidden>no workflows yet</div>
<div class="pager"><button type="button" id="newer" disabled>&larr; Newer</button>
<span id="page-info"></span><button type="button" id="older" disabled>Older &rarr;</button></div>
</div>
<div class="panel" id="detail" aria-live="polite" hidden></div>
</section>
</main>
<footer>JSON: <a href="/v1/workflows">/v1/workflows</a><a href="/v1/status">/v1/status</a>
<a href="/metrics">/metrics</a><a href="/openapi.json">/openapi.json</a></footer>
<script>@@JS@@</script>
</body></html>
"""


def page() -> str:
    """The page with its stylesheet and script inline (hash them as they appear here)."""
    return (HTML.replace("@@TILES@@", _TILES).replace("@@STATUS_OPTIONS@@", _STATUS_OPTIONS)
            .replace("@@CSS@@", CSS).replace("@@JS@@", JS))
