// The alert panel: a server-rendered fragment (fields, chips, coordinates, history, the status form).
// The server renders it in the reader's language; this module only fetches, inserts and wires it.

/** Load the panel of ``alertId`` into ``element``; resolves to true when it loaded. */
export async function openPanel(element, alertId, config, hooks) {
  const response = await fetch(`/map/alerts/${encodeURIComponent(alertId)}/panel`, {
    credentials: "same-origin",
    headers: { Accept: "text/html" },
  });
  if (!response.ok) {
    hooks.notify(config.strings.panelFailed);
    return false;
  }
  show(element, await response.text(), config, hooks);
  return true;
}

function show(element, html, config, hooks) {
  element.innerHTML = html; // server-rendered with autoescaping; holds no scripts (the CSP would block them)
  element.hidden = false;
  element.scrollTop = 0;
  showChips(element, config);
  element.querySelector("[data-action=close]")?.addEventListener("click", hooks.close);
  for (const code of element.querySelectorAll("[data-copy]")) {
    code.addEventListener("click", () => copy(code.textContent, config, hooks));
  }
  const form = element.querySelector("form.status-form");
  if (form) form.addEventListener("submit", (event) => submitStatus(event, element, config, hooks));
}

/**
 * The before/after chips: first the chips document (which scenes show the site, chosen and cached by
 * the server), then only the images that exist. Asking blindly for a side with no scene would be a
 * 404 in the console for an expected case (no clear scene within the window).
 */
async function showChips(element, config) {
  const box = element.querySelector(".chips");
  const panel = element.querySelector(".alert-panel");
  if (!box || !panel) return;
  const missing = (img) => {
    const note = document.createElement("p");
    note.className = "chip-missing";
    note.textContent = config.strings.imageMissing;
    img.replaceWith(note);
  };
  let sides = {};
  try {
    const response = await fetch(`/api/v1/alerts/${encodeURIComponent(panel.dataset.alertId)}/chips`, {
      credentials: "same-origin",
    });
    if (response.ok) sides = await response.json();
  } catch {
    // offline: no chips, the rest of the panel still works
  }
  for (const img of box.querySelectorAll("img.chip[data-src]")) {
    if (!sides[img.dataset.chip]) {
      missing(img);
      continue;
    }
    img.addEventListener("error", () => missing(img), { once: true });
    img.src = img.dataset.src;
  }
  box.dataset.state = "settled";
}

async function copy(text, config, hooks) {
  try {
    await navigator.clipboard.writeText(text.trim());
    hooks.notify(`${config.strings.copied}: ${text.trim()}`);
  } catch {
    // no clipboard (plain http, old phone): the text stays selectable
  }
}

async function submitStatus(event, element, config, hooks) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Fragment": "1", "X-CSRF-Token": config.csrfToken || "" },
    });
    const type = response.headers.get("Content-Type") || "";
    if (type.startsWith("text/html")) {
      show(element, await response.text(), config, hooks);
      if (response.ok) hooks.changed();
      return;
    }
    const problem = type.includes("json") ? await response.json() : { detail: response.statusText };
    hooks.notify(`${config.strings.saveFailed} ${problem.detail || response.status}`);
  } catch {
    hooks.notify(config.strings.saveFailed);
  } finally {
    button.disabled = false;
  }
}
