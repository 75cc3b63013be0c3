// Teach mode, shown when the server was started with --collect DIR: the page asks for a character,
// the person writes it, and Save (or Enter) stores the drawing in DIR through /api/samples.
// It builds on app.js's pad (canvas, modes, clearAll, status); the server never trains.
"use strict";

MODES.teach = { ...MODES.char, hint: "Write the character shown above" };

const teach = {
  mapping: "", // the model's characters
  chars: "", // the characters asked for, in turn
  index: 0,
  counts: {},
  busy: false,
  done: 0, // saves and undos answered; scripts driving the page wait on it
};

function teachCurrent() {
  return teach.chars[teach.index % teach.chars.length];
}

function teachAsk(index) {
  teach.index = index;
  const ask = $("teach-char");
  ask.textContent = teachCurrent();
  ask.dataset.character = teachCurrent();
  teachShowCounts();
}

function teachShowCounts() {
  const list = [...teach.chars].map((ch) => {
    const li = document.createElement("li");
    li.dataset.character = ch;
    li.dataset.count = String(teach.counts[ch] || 0);
    li.classList.toggle("current", ch === teachCurrent());
    const b = document.createElement("b");
    b.textContent = ch;
    li.append(b, String(teach.counts[ch] || 0));
    return li;
  });
  $("teach-counts").replaceChildren(...list);
  const total = Object.values(teach.counts).reduce((a, b) => a + b, 0);
  $("teach-total").textContent = `${total} sample${total === 1 ? "" : "s"} saved in all`;
  document.body.dataset.samples = String(total);
}

function teachUpdate(data) {
  teach.counts = data.counts;
  $("teach-command").textContent = data.command;
  teachShowCounts();
}

function teachSetChars() {
  const typed = [...new Set($("teach-set").value.replace(/\s/g, ""))];
  const known = typed.filter((c) => teach.mapping.includes(c));
  teach.chars = known.length ? known.join("") : teach.mapping;
  const unknown = typed.filter((c) => !teach.mapping.includes(c));
  teachAsk(0);
  if (unknown.length) status(`Not among the model's characters, left out: ${unknown.join(" ")}`, true);
}

async function teachRequest(url, options, onDone) {
  if (teach.busy) return;
  teach.busy = true;
  try {
    const response = await fetch(url, options);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    teachUpdate(data);
    onDone(data);
  } catch (err) {
    status(err.message || String(err), true);
  } finally {
    teach.busy = false;
    document.body.dataset.teachDone = String(++teach.done);
  }
}

async function teachSave() {
  if (!inked) {
    status("Write the character first", true);
    return;
  }
  const label = teachCurrent();
  const body = new FormData();
  body.append("file", upload || (await canvasBlob()), upload ? upload.name || "sample" : "sample.png");
  body.append("label", label);
  await teachRequest("/api/samples", { method: "POST", body }, () => {
    clearAll();
    teachAsk(teach.index + 1);
    status(`Saved ${label}; ${teach.counts[label]} of it so far`);
  });
}

async function teachUndo() {
  await teachRequest("/api/samples/last", { method: "DELETE" }, (data) => {
    const at = teach.chars.indexOf(data.label);
    if (at >= 0) teachAsk(at); // ask for it again
    status(`Removed the last sample of ${data.label}`);
  });
}

function teachShow(on) {
  for (const id of ["teach", "teach-panel", "teach-save", "teach-skip", "teach-undo"]) $(id).hidden = !on;
}

async function teachStart() {
  const response = await fetch("/api/samples");
  if (!response.ok) return; // the server was started without --collect
  const data = await response.json();
  teach.mapping = (await (await fetch("/api/model")).json()).mapping;
  teachUpdate(data);
  teachSetChars();
  $("teach-mode").hidden = false;
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => teachShow(radio.value === "teach"));
  }
  $("teach-save").addEventListener("click", teachSave);
  $("teach-skip").addEventListener("click", () => {
    clearAll();
    teachAsk(teach.index + 1);
  });
  $("teach-undo").addEventListener("click", teachUndo);
  $("teach-set").addEventListener("change", teachSetChars);
  document.addEventListener("keydown", (e) => {
    if (mode !== "teach" || e.key !== "Enter") return;
    e.preventDefault();
    if (e.target === $("teach-set")) {
      teachSetChars();
      e.target.blur(); // back to writing: the next Enter saves
    } else teachSave();
  });
  document.body.dataset.teach = "ready";
}

teachStart();
