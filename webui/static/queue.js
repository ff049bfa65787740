// The live queue: rows arrive and leave over a WebSocket without a reload; rejections in place; keyboard shortcuts.
// Rows cut their arguments, so they never approve: approving is done on the request's page, where every value is shown.
"use strict";

(function () {
  const tbody = document.getElementById("queue-rows");
  const empty = document.getElementById("queue-empty");
  const liveStatus = document.getElementById("live-status");
  const countBadge = document.getElementById("queue-count");
  const notifyToggle = document.getElementById("notify-toggle");
  const help = document.getElementById("help");
  const baseTitle = "Queue · Airlock";
  let selected = null;
  let retryDelay = 500;

  function rows() { return Array.from(tbody.querySelectorAll("tr[data-request-id]")); }

  function refreshCount() {
    const n = rows().length;
    document.title = (n ? "(" + n + ") " : "") + baseTitle;
    empty.hidden = n > 0;
    if (countBadge) { countBadge.textContent = String(n); countBadge.hidden = n === 0; }
    if (selected && !selected.isConnected) selected = null;
  }

  function parseRow(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();  // rendered and escaped by the server
    return template.content.querySelector("tr[data-request-id]");
  }

  function rowFor(id) { return tbody.querySelector('tr[data-request-id="' + id + '"]'); }

  function insertNewestFirst(row) {
    const id = Number(row.dataset.requestId);
    const after = rows().find(function (r) { return Number(r.dataset.requestId) < id; });
    tbody.insertBefore(row, after || null);
  }

  async function syncRow(id, announce) {
    const response = await fetch("/queue/rows/" + id, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    const gone = response.status === 204 || response.status === 404;
    const html = !gone && response.ok ? await response.text() : null;
    // Look the row up only now, with no await before the page changes: a full refresh (syncAll) or another event
    // for the same request may have changed the table while we waited, and a stale lookup would add it twice.
    const existing = rowFor(id);
    if (gone) {
      if (existing) existing.remove();
    } else if (html !== null) {
      const row = parseRow(html);
      if (!row) return;
      if (existing) {
        existing.replaceWith(row);
      } else {
        row.classList.add("arriving");
        insertNewestFirst(row);
        if (announce) notify(row);
      }
    }
    refreshCount();
    window.Airlock.tickCountdowns();
  }

  async function syncAll() {
    const response = await fetch("/queue/rows", { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) return;
    const selectedId = selected ? selected.dataset.requestId : null;
    tbody.innerHTML = await response.text();  // the server's own rendering, escaped there
    if (selectedId) select(rowFor(selectedId));
    refreshCount();
    window.Airlock.tickCountdowns();
  }

  function notify(row) {
    if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
    const tool = row.querySelector(".tool");
    new Notification("Airlock: a call waits for you", { body: tool ? tool.textContent : "a held call" });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/queue");
    socket.addEventListener("open", function () {
      retryDelay = 500;
      liveStatus.dataset.state = "live";
      liveStatus.textContent = "live";
      syncAll();  // whatever happened while we were away
    });
    socket.addEventListener("message", function (message) {
      const event = JSON.parse(message.data);
      if (event.request_id) syncRow(event.request_id, event.kind === "created");
    });
    socket.addEventListener("close", function () {
      liveStatus.dataset.state = "offline";
      liveStatus.textContent = "reconnecting…";
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    });
  }

  // Rejections in place: the form posts in the background and the row leaves the queue on success.
  tbody.addEventListener("submit", async function (event) {
    const form = event.target.closest("form.js-decide");
    if (!form) return;
    event.preventDefault();
    const row = form.closest("tr");
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin", headers: { Accept: "application/json" },
      });
      const body = await response.json();
      if (response.ok) {
        window.Airlock.toast(body.message);
        if (row) { moveSelection(1); row.remove(); }
      } else {
        window.Airlock.toast(body.error || "That did not work.", true);
        if (response.status === 409 && row) row.remove();
      }
    } catch (err) {
      window.Airlock.toast("Airlock could not be reached; nothing was decided.", true);
    } finally {
      if (button) button.disabled = false;
      refreshCount();
    }
  });

  // Batch: the count of ticked rows, and "tick all".
  const batchForm = document.getElementById("batch-form");
  const checkAll = document.getElementById("check-all");
  const batchLabel = document.getElementById("batch-count");
  const batchHint = batchLabel ? batchLabel.textContent : "";  // the server's wording: the batch only rejects
  function refreshBatch() {
    const n = document.querySelectorAll('input[name="request_id"]:checked').length;
    if (batchLabel) batchLabel.textContent = n ? n + " ticked to reject" : batchHint;
  }
  document.addEventListener("change", function (event) {
    if (event.target === checkAll) {
      document.querySelectorAll('input[name="request_id"]').forEach(function (box) { box.checked = checkAll.checked; });
    }
    refreshBatch();
  });
  if (batchForm) {
    // The batch bar only rejects: its rows cut their arguments, and approving is done on each request's page.
    batchForm.addEventListener("submit", function (event) {
      if (!batchForm.elements.reason.value.trim()) {
        event.preventDefault();
        window.Airlock.toast("Say why: a rejection needs a reason, which the agent reads.", true);
        batchForm.elements.reason.focus();
      }
    });
  }

  // Keyboard: j/k move, a or Enter open (approving is done on the request's page, where every value is shown),
  // r reject, e edit, x tick, ? help.
  function select(row) {
    if (selected) selected.classList.remove("selected");
    selected = row || null;
    if (selected) { selected.classList.add("selected"); selected.scrollIntoView({ block: "nearest" }); }
  }
  function moveSelection(step) {
    const all = rows();
    if (!all.length) { select(null); return; }
    const index = selected ? all.indexOf(selected) : -1;
    const next = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[next] === selected && step !== 0 ? all[index - 1] || all[index + 1] : all[next]);
  }
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target.closest("input, textarea, select") || event.metaKey || event.ctrlKey || event.altKey) {
      if (event.key === "Escape" && target.blur) target.blur();
      return;
    }
    const key = event.key;
    if (key === "?") { help.open ? help.close() : help.showModal(); return; }
    if (key === "j") { moveSelection(1); return; }
    if (key === "k") { moveSelection(-1); return; }
    if (!selected) { if ("areEx".includes(key)) moveSelection(0); if (!selected) return; }
    if (key === "a" || key === "Enter") {
      const link = selected.querySelector("a.rid");
      if (link) location.href = link.href;
    } else if (key === "r") {
      const box = selected.querySelector("details.reject-box");
      if (box) { box.open = true; box.querySelector('input[name="reason"]').focus(); event.preventDefault(); }
    } else if (key === "e") {
      const link = selected.querySelector("a[data-edit]");
      if (link) location.href = link.href;
    } else if (key === "x") {
      const box = selected.querySelector('input[name="request_id"]');
      if (box) { box.checked = !box.checked; refreshBatch(); }
    }
  });
  tbody.addEventListener("click", function (event) {
    const row = event.target.closest("tr[data-request-id]");
    if (row && !event.target.closest("a, button, input, summary, form")) select(row);
  });

  // Desktop notifications are opt-in: the browser only asks after a click.
  if (notifyToggle && "Notification" in window && Notification.permission !== "denied") {
    notifyToggle.hidden = Notification.permission === "granted";
    notifyToggle.addEventListener("click", function () {
      Notification.requestPermission().then(function (answer) {
        notifyToggle.hidden = answer === "granted";
        window.Airlock.toast(answer === "granted" ? "You will be notified of new held calls." : "Notifications stay off.");
      });
    });
  }

  setInterval(syncAll, 30000);  // a safety net for messages lost while the socket was busy
  refreshCount();
  connect();
})();
