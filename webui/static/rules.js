// The policy editor: the server checks the document as you type (the same check as `airlock policy check`).
"use strict";

(function () {
  const source = document.getElementById("policy-source");
  const list = document.getElementById("policy-problems");
  const status = document.getElementById("policy-status");
  const form = document.getElementById("policy-form");
  if (!source || !list || !form) return;
  let timer = null;
  let sequence = 0;

  function show(problems) {
    list.replaceChildren();
    problems.forEach(function (problem) {
      const item = document.createElement("li");
      item.className = "problem";
      if (problem.line) {
        item.dataset.line = problem.line;
        const line = document.createElement("span");
        line.className = "line";
        line.textContent = "line " + problem.line + " ";
        item.append(line);
      }
      const path = document.createElement("code");
      path.textContent = problem.path;
      item.append(path, " " + problem.message);
      list.append(item);
    });
    status.textContent = problems.length
      ? problems.length + " problem" + (problems.length === 1 ? "" : "s") + ": fix them to save."
      : "No problems: ready to save.";
  }

  async function check() {
    const mine = ++sequence;
    const body = new FormData();
    body.append("csrf_token", form.elements.csrf_token.value);
    body.append("source", source.value);
    try {
      const response = await fetch("/rules/check", { method: "POST", body: body, credentials: "same-origin" });
      if (!response.ok || mine !== sequence) return;
      show((await response.json()).problems);
    } catch (err) {
      status.textContent = "Could not reach Airlock to check the policy.";
    }
  }

  source.addEventListener("input", function () {
    status.textContent = "Checking…";
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });
  list.addEventListener("click", function (event) {
    const item = event.target.closest("[data-line]");
    if (!item) return;
    const lines = source.value.split("\n");
    const line = Math.min(Number(item.dataset.line), lines.length);
    const start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
    source.focus();
    source.setSelectionRange(start, start + lines[line - 1].length);
  });
})();
