// Shared by every page: live countdowns and a small toast. No inline scripts anywhere (strict CSP).
"use strict";

window.Airlock = (function () {
  function span(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + String(seconds % 60).padStart(2, "0") + "s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + String(Math.floor((seconds % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(seconds / 86400) + "d " + Math.floor((seconds % 86400) / 3600) + "h";
  }

  function tickCountdowns() {
    const now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      const left = (Date.parse(el.dataset.deadline) - now) / 1000;
      el.textContent = left <= 0 ? "expired" : span(left);
      el.classList.toggle("soon", left > 0 && left < 60);
    });
  }

  let toastTimer = null;
  function toast(message, bad) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;  // text, never HTML
    el.classList.toggle("bad", !!bad);
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, 5000);
  }

  // Copy buttons: <button data-copy="ID"> copies the text of the element with that id.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent).then(
      function () { toast("Copied."); },
      function () { toast("Copy failed: select the text and copy it by hand.", true); }
    );
  });

  document.addEventListener("DOMContentLoaded", function () {
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
  });

  return { toast: toast, tickCountdowns: tickCountdowns };
})();
