// The fleet page: fetches /v1/fleet and renders one row per site. Every value
// reaches the DOM through textContent (site names, holders, ids are data).
"use strict";

(function () {
  const LIVE = ["PENDING", "RUNNING", "SLEEPING", "WAITING"];
  const STALE_SECONDS = 300;
  const TOKEN_KEY = "edge-fleet-token";

  // /#token=T: kept in this tab's sessionStorage and dropped from the address bar.
  function takeToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (m) {
      window.sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      window.history.replaceState(null, "", window.location.pathname);
    }
    return window.sessionStorage.getItem(TOKEN_KEY);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) {
      e.className = cls;
    }
    if (text !== undefined && text !== null) {
      e.textContent = String(text);
    }
    return e;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) {
      return "-";
    }
    const s = Math.max(0, seconds);
    if (s < 120) {
      return s.toFixed(1) + " s";
    }
    if (s < 7200) {
      return (s / 60).toFixed(1) + " min";
    }
    if (s < 172800) {
      return (s / 3600).toFixed(1) + " h";
    }
    return (s / 86400).toFixed(1) + " d";
  }

  function cell(row, text, cls) {
    const td = el("td", cls, text);
    row.appendChild(td);
    return td;
  }

  function siteRow(site) {
    const tr = el("tr");
    tr.dataset.site = site.site;
    const lease = site.lease || {};
    const rep = site.replica;
    const counts = site.workflows;
    cell(tr, site.site, "mono");
    const leaseCell = cell(tr, null);
    if (site.error && !site.lease) {
      leaseCell.appendChild(el("span", "pill error", "unreadable"));
    } else {
      leaseCell.appendChild(el("span", "pill " + (lease.state || ""), lease.state || "-"));
    }
    cell(tr, lease.holder || "-", "mono");
    cell(tr, lease.epoch === undefined ? "-" : lease.epoch, "num");
    const age = cell(tr, rep ? duration(rep.age_seconds) + " ago" : "-");
    if (rep && rep.age_seconds > STALE_SECONDS) {
      age.classList.add("stale");
    }
    let live = null;
    if (counts) {
      live = LIVE.reduce(function (n, k) { return n + (counts[k] || 0); }, 0);
    }
    cell(tr, live === null ? "-" : live, "num");
    cell(tr, counts ? counts.SUCCEEDED : "-", "num");
    cell(tr, counts ? counts.FAILED : "-", "num" + (counts && counts.FAILED ? " bad" : ""));
    const recent = site.failed_24h;
    cell(tr, recent === null || recent === undefined ? "-" : recent,
      "num" + (recent ? " bad" : ""));
    let note = "";
    if (site.error) {
      note = "error: " + site.error.message;
    } else if (site.oldest_waiting) {
      const w = site.oldest_waiting;
      note = "oldest waiting " + w.id + " for " + (w.waiting_for || "?") + " (" +
        duration(w.age_seconds) + ")";
    } else if (!rep) {
      note = "no replicated data yet";
    }
    cell(tr, note, site.error ? "bad" : "");
    if (site.error || recent || lease.state === "expired") {
      tr.classList.add("problem");
    }
    return tr;
  }

  function totals(sites) {
    const box = document.getElementById("totals");
    const t = { sites: sites.length, live: 0, failed24: 0, expired: 0, errors: 0 };
    sites.forEach(function (s) {
      const c = s.workflows || {};
      LIVE.forEach(function (k) { t.live += c[k] || 0; });
      t.failed24 += s.failed_24h || 0;
      t.expired += s.lease && s.lease.state === "expired" ? 1 : 0;
      t.errors += s.error ? 1 : 0;
    });
    const parts = [["sites", t.sites], ["live workflows", t.live], ["failed in 24 h", t.failed24],
      ["expired leases", t.expired], ["unreadable", t.errors]];
    box.replaceChildren();
    parts.forEach(function (p) {
      const d = el("div", "total");
      d.dataset.name = p[0];
      d.appendChild(el("b", null, p[1]));
      d.appendChild(document.createTextNode(p[0]));
      box.appendChild(d);
    });
  }

  function render(data) {
    document.getElementById("replica").textContent = data.replica || "";
    const body = document.getElementById("sites");
    body.replaceChildren.apply(body, data.sites.map(siteRow));
    document.getElementById("empty").hidden = data.sites.length > 0;
    totals(data.sites);
    const banner = document.getElementById("banner");
    if (data.last_error) {
      banner.textContent = "The last read of the bucket failed: " + data.last_error.message +
        (data.last_error.hint ? " (" + data.last_error.hint + ")" : "") +
        ". Showing the previous read.";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    const r = document.getElementById("refresh");
    const at = data.read_at ? data.read_at.slice(0, 19).replace("T", " ") + "Z" : "never";
    r.textContent = "read " + at + ", every " + duration(data.refresh_seconds);
    r.dataset.ok = String(Date.now());
  }

  function refresh() {
    const headers = { Accept: "application/json" };
    const token = window.sessionStorage.getItem(TOKEN_KEY);
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    fetch("/v1/fleet", { headers: headers, cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 401) {
          throw new Error("this fleet view needs its token: open /#token=TOKEN");
        }
        if (!resp.ok) {
          throw new Error("HTTP " + resp.status);
        }
        return resp.json();
      })
      .then(render)
      .catch(function (err) {
        const banner = document.getElementById("banner");
        banner.textContent = "Cannot reach the fleet server: " + err.message;
        banner.hidden = false;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    takeToken();
    refresh();
    window.setInterval(refresh, 5000);
  });
}());
