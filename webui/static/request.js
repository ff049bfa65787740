// Edit & approve: say at once whether the edited arguments are a JSON object (the schema check is the server's).
"use strict";

(function () {
  const editor = document.getElementById("edit-arguments");
  const hint = document.getElementById("edit-hint");
  const button = document.getElementById("edit-approve");
  if (!editor || !hint) return;
  function check() {
    try {
      const value = JSON.parse(editor.value);
      const ok = value !== null && typeof value === "object" && !Array.isArray(value);
      hint.textContent = ok ? "Valid JSON. The tool's schema is checked when you approve." : "The arguments must be a JSON object.";
      hint.classList.toggle("error", !ok);
      if (button) button.disabled = !ok;
    } catch (err) {
      hint.textContent = "Not JSON yet: " + err.message;
      hint.classList.add("error");
      if (button) button.disabled = true;
    }
  }
  editor.addEventListener("input", check);
})();
