"use strict";
(() => {
  // The node's own list (edge.store.WORKFLOW_STATUSES), in a JSON block of the page.
  const META = JSON.parse(document.getElementById("edge-statuses").textContent);
  const STATUSES = META.statuses;
  const FINAL = new Set(META.final);
  const PAGES = ["workflows", "queues", "schedules"];
  const POLL_MS = 2000;
  const DEFAULT_LIMIT = 25;
  // The open workflow's steps are read a page at a time, only those after the settled
  // ones (see stepsAfter), at most STEP_PAGES pages per refresh.
  const STEP_PAGE = 1000;
  const STEP_PAGES = 10;
  const TOKEN_KEY = "edge.apiToken";

  const $ = (id) => document.getElementById(id);
  // What the user looks at; mirrored in the URL fragment (#status=&workflow=&limit=&id=).
  const view = { page: "workflows", status: "", workflow: "", limit: DEFAULT_LIMIT, id: null,
                 tags: [], prefix: "", since: "", until: "" };
  const st = {
    token: null, cursors: [null], nextCursor: null, paused: false, timer: 0, busy: false,
    again: false, skewMs: 0, names: null,
    seen: { status: "", list: "", detail: "", page: "" },
    detail: null, lastOk: 0, authNeeded: false, actions: null, actionsFor: null,
    children: new Map(), steps: { id: null, status: null, bySeq: new Map() },
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
    try { return JSON.stringify(v); } catch { return String(v); }
  }
  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch { return String(v); }
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
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  }
  function saveToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the token lives in memory only */ }
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
    view.tags = p.getAll("tag").filter((t) => t.includes("="));
    view.prefix = p.get("prefix") || "";
    view.since = p.get("since") || "";
    view.until = p.get("until") || "";
    const pg = p.get("page") || "workflows";
    view.page = PAGES.includes(pg) ? pg : "workflows";
    writeFragment();
  }
  function fragment(id) {
    const p = new URLSearchParams();
    if (view.page !== "workflows") p.set("page", view.page);
    if (view.status) p.set("status", view.status);
    if (view.workflow) p.set("workflow", view.workflow);
    for (const t of view.tags) p.append("tag", t);
    if (view.prefix) p.set("prefix", view.prefix);
    if (view.since) p.set("since", view.since);
    if (view.until) p.set("until", view.until);
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

  async function api(path, method, payload) {
    const headers = { Accept: "application/json" };
    if (st.token) headers.Authorization = "Bearer " + st.token;
    const init = { headers, cache: "no-store", credentials: "omit", method: method || "GET" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
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
    try { body = JSON.parse(text); } catch { body = null; }
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
    if (st.access !== s.access) {
      st.access = s.access;
      document.body.classList.toggle("read-only", s.access === "read");
    }
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
    const drill = r.drill && r.drill.last;
    if (drill) {
      const at = ms(drill.finished_at);
      const when = at === null ? "" : " (" + rel(at) + ", epoch " + drill.epoch + ")";
      chips.push(drill.ok ? ["ok", "replica verified"]
                          : [drill.kind === "no_replica" ? "warn" : "bad",
                             "drill failed: " + drill.kind]);
      pairs.push(["Last drill", h("span", { id: "last-drill", text: drill.ok
        ? "verified TXID " + drill.txid_hex + when
        : "failed (" + drill.kind + "): " + drill.detail + when })]);
    } else if (r.drill) {
      pairs.push(["Last drill", h("span", { id: "last-drill", text: "none yet" })]);
    }
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
    $("wf-empty").textContent = view.status || view.workflow || searching()
      ? "no workflows match these filters" : "no workflows yet";
    st.nextCursor = page.next_cursor || null;
    $("older").disabled = !st.nextCursor;
    $("newer").disabled = st.cursors.length <= 1;
    const pageNo = st.cursors.length;
    $("page-info").textContent = "page " + pageNo + " \u00b7 " + rows.length + " shown";
  }

  const searching = () => view.tags.length || view.prefix || view.since || view.until;

  // datetime-local holds local wall time without a zone; the API wants an absolute time.
  function toIso(local) {
    if (!local) return "";
    const t = new Date(local);
    return Number.isNaN(t.getTime()) ? "" : t.toISOString();
  }
  function toLocal(iso) {
    const t = ms(iso);
    if (t === null) return "";
    const d = new Date(t);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
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
    const tags = Object.entries(d.tags || {});
    if (tags.length) {
      meta.push(["Tags", h("span", { id: "detail-tags" }, tags.map(([k, v]) => h("button", {
        type: "button", class: "tagchip", title: "list workflows tagged " + k + "=" + v,
        text: k + "=" + v, onclick: () => {
          view.tags = [k + "=" + v];
          view.prefix = view.since = view.until = "";
          setFilter("", "");
        } })))]);
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
    kids.push(actionsBar(d));
    const kids2 = childrenList(d);
    if (kids2) kids.push(kids2);
    kids.push(h("h3", { text: "TIMELINE" }));
    kids.push(stepsTable(d, t0, end));
    box.replaceChildren(...kids);
  }

  // ---- actions: the API's write routes, each confirmed, each answer shown -----------------

  function actionsBar(d) {
    // Built once per selected workflow and moved into each re-render, so what the user
    // types (an event name, a step number) survives the 2 s refresh.
    if (st.actionsFor !== d.id || !st.actions) {
      st.actionsFor = d.id;
      st.actions = buildActions(d.id);
    }
    const a = st.actions;
    const final = FINAL.has(d.status);
    a.cancel.disabled = final;
    a.resume.disabled = !(d.status === "FAILED" || d.status === "CANCELLED");
    a.send.disabled = final;
    a.fork.disabled = false;
    a.data = d;
    return a.el;
  }

  function buildActions(id) {
    const out = h("div", { class: "action-result", id: "action-result", role: "status",
                           hidden: true });
    const a = { data: null };
    const show = (ok, text) => {
      out.hidden = false;
      out.className = "action-result " + (ok ? "ok" : "err");
      out.textContent = text;
    };
    const run = async (what, path, payload) => {
      if (!window.confirm(what + "?")) return;
      try {
        const { body } = await api(path, "POST", payload);
        show(true, what + ": " + json(body));
      } catch (e) {
        show(false, what + " refused: " + e.message + (e.hint ? " (" + e.hint + ")" : ""));
      }
      st.seen.detail = "";
      st.seen.list = "";
      forgetSteps();
      refresh();
    };
    const base = "/v1/workflows/" + encodeURIComponent(id);
    a.cancel = h("button", { type: "button", id: "act-cancel", class: "act danger",
                             text: "Cancel", onclick: () => run("Cancel " + id, base + "/cancel", {}) });
    a.resume = h("button", { type: "button", id: "act-resume", class: "act", text: "Resume",
                             onclick: () => run("Resume " + id, base + "/resume", {}) });
    const step = h("input", { id: "act-fork-step", type: "number", min: "1", value: "1",
                              size: "4", "aria-label": "fork from step" });
    a.fork = h("button", { type: "button", id: "act-fork", class: "act", text: "Fork from step",
                           onclick: () => {
                             const n = Number(step.value);
                             if (!Number.isInteger(n) || n < 1) {
                               show(false, "the step must be a whole number >= 1");
                               return;
                             }
                             run("Fork " + id + " from step " + n, base + "/fork", { from_step: n });
                           } });
    const evName = h("input", { id: "act-event-name", type: "text", placeholder: "event name",
                                size: "12", "aria-label": "event name" });
    const evValue = h("input", { id: "act-event-value", type: "text", placeholder: "JSON value",
                                 size: "12", "aria-label": "event value (JSON)" });
    a.send = h("button", { type: "button", id: "act-send", class: "act", text: "Send event",
                           onclick: () => {
                             const name = evName.value.trim();
                             if (!name) { show(false, "give the event a name"); return; }
                             let value = null;
                             const text = evValue.value.trim();
                             if (text) {
                               try { value = JSON.parse(text); } catch (e) {
                                 show(false, "the value is not JSON: " + e.message);
                                 return;
                               }
                             }
                             run("Send event \u201c" + name + "\u201d to " + id,
                                 base + "/events/" + encodeURIComponent(name), { value });
                           } });
    const download = h("button", { type: "button", id: "act-download", class: "act",
                                   text: "Download JSON", onclick: () => {
                                     const blob = new Blob([pretty(a.data)],
                                                           { type: "application/json" });
                                     const link = h("a", { href: URL.createObjectURL(blob),
                                                           download: id + ".json" });
                                     document.body.append(link);
                                     link.click();
                                     link.remove();
                                     setTimeout(() => URL.revokeObjectURL(link.href), 0);
                                   } });
    a.el = h("div", { class: "actions", id: "actions" },
      h("div", { class: "action-row" }, a.cancel, a.resume, step, a.fork, evName, evValue,
        a.send, download),
      out);
    return a;
  }

  // ---- children: the child starts recorded in the timeline, with their status -------------

  function childrenList(d) {
    const ids = (d.steps || []).filter((s) => s.kind === "child" && typeof s.output === "string")
      .map((s) => s.output);
    if (!ids.length) return null;
    const items = ids.slice(0, 100).map((cid) => {
      const known = st.children.get(cid);
      if (!known || !FINAL.has(known.status)) loadChild(cid);
      return h("li", { data: { id: cid } },
        h("a", { href: fragment(cid), class: "mono", text: cid,
                 onclick: (ev) => { ev.preventDefault(); select(cid); } }),
        " ", known ? badge(known.status) : h("span", { class: "kind", text: "\u2026" }),
        known && known.children ? " " + known.children + " child(ren)" : null);
    });
    return h("div", { class: "children", id: "children" },
      h("h3", { text: "CHILDREN (" + ids.length + ")" }), h("ul", null, items));
  }

  async function loadChild(cid) {
    try {
      const { body } = await api("/v1/workflows/" + encodeURIComponent(cid) +
                                 "?steps_limit=" + STEP_PAGE);
      const n = (body.steps || []).filter((s) => s.kind === "child").length +
        (body.next_steps_cursor === null ? "" : "+");
      const before = st.children.get(cid);
      st.children.set(cid, { status: body.status, children: n });
      if (!before || before.status !== body.status) st.seen.detail = "";
    } catch (e) {
      st.children.set(cid, { status: e.status === 404 ? "pruned" : "unknown", children: 0 });
    }
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
    if (isMarker(s.output)) {
      return "(" + s.output.bytes + " bytes, not listed: GET " + s.output.href + ")";
    }
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
      for (const a of s.history || []) {
        const when = ms(a.retry_at);
        rows.push(h("tr", { class: "attempt", data: { seq: String(s.seq), attempt: String(a.attempt) } },
          h("td"),
          h("td", { colspan: "6" },
            h("span", { class: "kind", text: "attempt " + a.attempt + " failed " +
                                             clock(ms(a.finished_at)) }),
            " ", h("span", { class: "err", text: errText(a.error) }),
            when === null ? null : h("span", { class: "kind",
                                              text: " \u00b7 retry at " + clock(when) }))));
      }
      if (s.next_retry_at) {
        const next = ms(s.next_retry_at);
        rows.push(h("tr", { class: "next-retry", data: { seq: String(s.seq) } }, h("td"),
          h("td", { colspan: "6" }, h("b", { text: "next retry " }),
            clock(next) + " (" + rel(next) + ")")));
      }
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

  // ---- queue and schedule pages -------------------------------------------------------------

  function table(id, head, rows, empty) {
    if (!rows.length) return h("div", { class: "empty", id: id + "-empty", text: empty });
    return h("table", { id },
      h("thead", null, h("tr", null, head.map((t) => h("th", { text: t })))),
      h("tbody", null, rows));
  }

  function renderQueues(body) {
    const rows = (body.queues || []).map((q) => {
      const rate = q.rate ? q.rate.limit + " per " + dur(q.rate.period) : "none";
      return h("tr", { data: { queue: q.name } },
        h("td", { class: "mono", text: q.name }),
        h("td", { class: "num q-active", text: q.active }),
        h("td", { class: "num q-waiting", text: q.waiting }),
        h("td", { class: "num", text: q.concurrency === null ? "unlimited" : q.concurrency }),
        h("td", { text: rate }),
        h("td", { text: q.declared ? "yes" : "no (not declared by this code)" }));
    });
    $("queues-info").replaceChildren(table("queues-table",
      ["QUEUE", "IN FLIGHT", "WAITING", "CONCURRENCY", "RATE", "DECLARED"], rows,
      "no queues: declare one with app.queue(...)"));
  }

  function renderSchedules(body) {
    const rows = (body.schedules || []).map((sc) => {
      const verb = sc.paused ? "resume" : "pause";
      const btn = h("button", { type: "button", class: "act sched-toggle",
                                data: { schedule: sc.name },
                                text: sc.paused ? "Resume" : "Pause", onclick: async () => {
          if (!window.confirm((sc.paused ? "Resume" : "Pause") + " schedule " + sc.name + "?")) {
            return;
          }
          const note = $("schedules-result");
          try {
            await api("/v1/schedules/" + encodeURIComponent(sc.name) + "/" + verb, "POST", {});
            note.className = "action-result ok";
            note.textContent = "schedule " + sc.name + " " + (sc.paused ? "resumed" : "paused");
          } catch (e) {
            note.className = "action-result err";
            note.textContent = verb + " refused: " + e.message + (e.hint ? " (" + e.hint + ")" : "");
          }
          note.hidden = false;
          st.seen.page = "";
          refresh();
        } });
      const next = ms(sc.next_tick);
      return h("tr", { data: { schedule: sc.name } },
        h("td", { class: "mono", text: sc.name }),
        h("td", { text: sc.workflow }),
        h("td", { class: "mono", text: sc.cron + " (" + sc.tz + ")" }),
        h("td", { class: "sched-state", text: sc.paused ? "paused" : "active" }),
        h("td", { text: sc.paused || next === null ? "\u2013" : clock(next) + " (" + rel(next) + ")" }),
        h("td", null, sc.last_tick ? timeEl(sc.last_tick) : "never"),
        h("td", null, btn));
    });
    const note = $("schedules-result") || h("div", { id: "schedules-result",
                                                      class: "action-result", hidden: true });
    $("schedules-info").replaceChildren(note, table("schedules-table",
      ["SCHEDULE", "WORKFLOW", "CRON", "STATE", "NEXT TICK", "LAST TICK", ""], rows,
      "no schedules: add one with @app.schedule(...)"));
  }

  async function loadPage() {
    const path = view.page === "queues" ? "/v1/queues" : "/v1/schedules";
    const { body, text } = await api(path);
    const key = view.page + "\n" + text;
    if (key === st.seen.page) return;
    st.seen.page = key;
    if (view.page === "queues") renderQueues(body); else renderSchedules(body);
  }

  function showPage() {
    const wf = view.page === "workflows";
    $("work").hidden = !wf;
    $("queues-page").hidden = view.page !== "queues";
    $("schedules-page").hidden = view.page !== "schedules";
    for (const a of document.querySelectorAll("nav.pages a")) {
      a.classList.toggle("active", a.dataset.page === view.page);
    }
  }

  // ---- refresh loop ------------------------------------------------------------------------

  function listPath() {
    const p = new URLSearchParams();
    if (view.status) p.set("status", view.status);
    if (view.workflow) p.set("workflow", view.workflow);
    for (const t of view.tags) p.append("tag", t);
    if (view.prefix) p.set("prefix", view.prefix);
    if (view.since) p.set("since", view.since);
    if (view.until) p.set("until", view.until);
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

  // A value the API did not list (over 64 KiB): {"truncated": true, "bytes", "href"}.
  function isMarker(v) {
    return v !== null && typeof v === "object" && v.truncated === true &&
      typeof v.href === "string";
  }

  function forgetSteps() {
    st.steps = { id: null, status: null, bySeq: new Map() };
  }

  // The seq after which steps may still change: the last of the unbroken run of finished
  // steps from seq 1 (a running step, or a hole a parallel step may still fill, stops it).
  function stepsAfter(final) {
    let after = 0;
    for (const seq of [...st.steps.bySeq.keys()].sort((x, y) => x - y)) {
      const s = st.steps.bySeq.get(seq);
      if ((seq !== after + 1 && !final) || s.status === "RUNNING") break;
      after = seq;
    }
    return after;
  }

  // The workflow's row and its steps after the settled ones, merged into what was read
  // before; a final workflow that runs again (resume reopens its closed steps) rereads all.
  async function readDetail(id) {
    const base = "/v1/workflows/" + encodeURIComponent(id) + "?steps_limit=" + STEP_PAGE;
    if (st.steps.id !== id) st.steps = { id, status: null, bySeq: new Map() };
    const known = st.steps;
    let res = await api(base + "&steps_after=" + stepsAfter(FINAL.has(known.status)));
    if (FINAL.has(known.status) && !FINAL.has(res.body.status)) {
      known.bySeq.clear();
      res = await api(base + "&steps_after=0");
    }
    const texts = [res.text];
    let page = res.body;
    for (let n = 1; ; n++) {
      for (const s of page.steps || []) known.bySeq.set(s.seq, s);
      if (page.next_steps_cursor === null || n >= STEP_PAGES) break;
      const more = await api(base + "&steps_after=" + page.next_steps_cursor);
      texts.push(more.text);
      page = more.body;
    }
    known.status = res.body.status;
    const d = res.body;
    delete d.next_steps_cursor;  // d is the whole timeline read so far (Download JSON)
    d.steps = [...known.bySeq.keys()].sort((x, y) => x - y).map((k) => known.bySeq.get(k));
    return { d, text: texts.join("\n") };
  }

  async function loadDetail() {
    const id = view.id;
    const box = $("detail");
    let res;
    try {
      res = await readDetail(id);
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
    const d = res.d;
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
    const jobs = [loadStatus()];
    if (view.page === "workflows") {
      jobs.push(loadList());
      if (view.id) jobs.push(loadDetail());
    } else {
      jobs.push(loadPage());
    }
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
    if (id && view.page !== "workflows") {
      view.page = "workflows";
      showPage();
    }
    view.id = id;
    st.seen.detail = "";
    forgetSteps();
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
    $("f-tag").value = view.tags.join(" ");
    $("f-prefix").value = view.prefix;
    $("f-since").value = toLocal(view.since);
    $("f-until").value = toLocal(view.until);
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
    $("search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      view.tags = $("f-tag").value.split(/\s+/).filter((t) => t.includes("="));
      view.prefix = $("f-prefix").value.trim();
      view.since = toIso($("f-since").value);
      view.until = toIso($("f-until").value);
      setFilter(view.status, view.workflow);
    });
    $("search-clear").addEventListener("click", () => {
      view.tags = [];
      view.prefix = view.since = view.until = "";
      setFilter(view.status, view.workflow);
    });
    $("jump").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = $("f-id").value.trim();
      if (id) select(id);
    });
    window.addEventListener("hashchange", () => {
      const before = fragment(null);
      readFragment();
      if (fragment(null) !== before) resetPaging();
      st.seen.page = "";
      showPage();
      syncControls();
      select(view.id);
      refresh();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !st.paused) refresh();
    });
    showPage();
    syncControls();
    select(view.id);
    refresh();
  }

  init();
})();
