// The writing pad: draw or upload, send the image to the server, show what the model read.
// Plain JavaScript, no libraries, nothing loaded from elsewhere, so the page works offline.
"use strict";

// Canvas size in its own pixels, and the pen's width in them, per mode. The canvas is sent as
// drawn; the server crops and scales it to the model's 28x28, so only proportions matter:
// a pen about a twelfth of a character's height looks like EMNIST's strokes.
const MODES = {
  char: { width: 280, height: 280, pen: 16, url: "/api/predict", top: 5, hint: "Draw a character here, or drop an image" },
  line: { width: 840, height: 240, pen: 12, url: "/api/predict/line", top: 3, hint: "Write a line here, left to right, or drop an image" },
};
const DEBOUNCE_MS = 250; // while drawing, wait this long after the last stroke point

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const overlay = $("overlay");
const ctx = canvas.getContext("2d");
const octx = overlay.getContext("2d");

let mode = "char";
let inked = false; // something to read: strokes or an uploaded image
let upload = null; // the uploaded file, sent as it is until someone draws over it
let fit = { scale: 1, dx: 0, dy: 0 }; // where the uploaded image sits on the canvas
let timer = 0; // the debounce timer; 0 when none is pending
let sent = 0; // requests sent; an answer to an older one than the newest shown is dropped
let shown = 0;
let busy = false;
let again = false;
let epoch = 0; // bumped by every clear, so an answer about a cleared drawing is dropped

// --- drawing ------------------------------------------------------------------------------

function resetCanvas() {
  const m = MODES[mode];
  for (const c of [canvas, overlay]) {
    c.width = m.width;
    c.height = m.height;
  }
  // A white sheet, not a transparent one: the PNG sent must look like ink on paper.
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = ctx.fillStyle = "#111";
  octx.clearRect(0, 0, overlay.width, overlay.height);
  inked = false;
  upload = null;
  $("hint").textContent = m.hint;
  $("hint").hidden = false;
}

function point(e) {
  // The canvas may be scaled by CSS on a narrow screen; strokes go where the pointer is.
  const r = canvas.getBoundingClientRect();
  const w = MODES[mode].pen * (e.pointerType === "pen" && e.pressure > 0 ? 0.4 + 1.2 * e.pressure : 1);
  return { x: ((e.clientX - r.left) * canvas.width) / r.width, y: ((e.clientY - r.top) * canvas.height) / r.height, w };
}

let stroke = null; // the points of the stroke being drawn: [previous, last]

function startStroke(e) {
  if (e.button !== undefined && e.button > 0) return;
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  if (upload) {
    upload = null; // drawing over an upload: from now on the canvas is what is read
  }
  const p = point(e);
  stroke = [p, p];
  ctx.beginPath();
  ctx.arc(p.x, p.y, p.w / 2, 0, 2 * Math.PI);
  ctx.fill();
  inked = true;
  $("hint").hidden = true;
}

function moveStroke(e) {
  if (!stroke) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = point(ev);
    const [a, b] = stroke;
    // A quadratic curve through the midpoints smooths the corners a mouse's sampling makes.
    ctx.beginPath();
    ctx.lineWidth = (b.w + p.w) / 2;
    ctx.moveTo((a.x + b.x) / 2, (a.y + b.y) / 2);
    ctx.quadraticCurveTo(b.x, b.y, (b.x + p.x) / 2, (b.y + p.y) / 2);
    ctx.stroke();
    stroke = [b, p];
  }
  schedule(DEBOUNCE_MS);
}

function endStroke(e) {
  if (!stroke) return;
  const [a, b] = stroke;
  ctx.beginPath();
  ctx.lineWidth = b.w;
  ctx.moveTo((a.x + b.x) / 2, (a.y + b.y) / 2);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
  stroke = null;
  schedule(0);
}

// --- uploads ------------------------------------------------------------------------------

function showUpload(file) {
  resetCanvas();
  upload = file;
  inked = true;
  $("hint").hidden = true;
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    // Fit the picture on the sheet; the server still gets the file itself, not this copy.
    const scale = Math.min(canvas.width / img.naturalWidth, canvas.height / img.naturalHeight);
    fit = { scale, dx: (canvas.width - img.naturalWidth * scale) / 2, dy: (canvas.height - img.naturalHeight * scale) / 2 };
    ctx.drawImage(img, fit.dx, fit.dy, img.naturalWidth * scale, img.naturalHeight * scale);
    URL.revokeObjectURL(url);
  };
  img.onerror = () => URL.revokeObjectURL(url); // the browser cannot show it; the server may read it
  img.src = url;
  schedule(0);
}

// --- talking to the server ----------------------------------------------------------------

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = 0;
    send();
  }, ms);
  mark();
}

// "idle" once every drawing has been answered: tests and scripts driving the page wait for it.
function mark() {
  document.body.dataset.state = timer || busy || again ? "working" : "idle";
}

function canvasBlob() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function send() {
  if (!inked) return mark();
  if (busy) {
    again = true; // one request at a time; the newest drawing goes next
    return mark();
  }
  busy = true;
  mark();
  const m = MODES[mode];
  const requestEpoch = epoch;
  const id = ++sent;
  let body;
  let headers = {};
  if (upload) {
    body = new FormData();
    body.append("file", upload, upload.name || "image");
  } else {
    fit = { scale: 1, dx: 0, dy: 0 };
    body = await canvasBlob();
    headers = { "Content-Type": "image/png" };
  }
  try {
    const response = await fetch(`${m.url}?${query(m)}`, { method: "POST", body, headers });
    const data = await response.json();
    if (id > shown && requestEpoch === epoch) {
      shown = id;
      if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
      if (mode === "line") showLine(data);
      else showCharacter(data);
      status("");
    }
  } catch (err) {
    if (requestEpoch === epoch) {
      clearResults(); // an answer about an earlier image must not look like this one's
      status(err.message || String(err), true);
    }
  } finally {
    busy = false;
    document.body.dataset.answers = String(id);
    if (again) {
      again = false;
      schedule(0);
    }
    mark();
  }
}

// The request's query: how many candidates, and the characters the answer may be when limited.
function query(m) {
  const params = new URLSearchParams({ top: String(m.top) });
  if ($("charset").value) params.set("charset", $("charset").value);
  return params.toString();
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// What the answer says in words: the character, "?" with the best candidates when the model is
// unsure ("? A 41% or H 30%"), or "not a character" with the reason.
function verdict(data) {
  if (data.character === null) return `not a character: ${data.reason}`;
  if (data.unsure) return `? ${data.top.slice(0, 3).map((t) => `${t.character} ${(100 * t.probability).toFixed(0)}%`).join(" or ")}`;
  return "";
}

function showCharacter(data) {
  const pred = $("prediction");
  pred.textContent = data.character === null ? "\u2014" : data.unsure ? `${data.character}?` : data.character;
  pred.dataset.character = data.character === null ? "" : data.character;
  pred.dataset.probability = data.probability === null ? "" : data.probability;
  pred.dataset.unsure = String(data.unsure);
  pred.classList.remove("empty");
  pred.classList.toggle("unsure", data.unsure);
  $("verdict").textContent = verdict(data);
  if (data.input_png) $("seen").src = `data:image/png;base64,${data.input_png}`;
  else $("seen").removeAttribute("src");
  const bars = $("bars");
  bars.replaceChildren(
    ...data.top.map(({ character, probability }) => {
      const li = document.createElement("li");
      li.dataset.character = character;
      li.dataset.probability = probability;
      li.innerHTML = '<span class="char"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
      li.querySelector(".char").textContent = character;
      li.querySelector(".fill").style.width = percent(probability);
      li.querySelector(".pct").textContent = percent(probability);
      return li;
    })
  );
}

// A box [x0, y0, x1, y1] in the image's pixels, in the canvas's.
function onCanvas(box) {
  return box.map((v, i) => (i % 2 ? fit.dy : fit.dx) + v * fit.scale);
}

function showLine(data) {
  $("text").textContent = data.text || (data.reason ? `no characters: ${data.reason}` : "(nothing found)");
  $("text").dataset.text = data.text;
  octx.clearRect(0, 0, overlay.width, overlay.height);
  octx.lineWidth = 2;
  octx.font = "bold 18px system-ui, sans-serif";
  // Marks that are not characters (a blot, a full stop, a scribble): boxed in grey, left out of the text.
  octx.setLineDash([4, 4]);
  octx.strokeStyle = "#8a8a8a";
  for (const m of data.ignored || []) {
    const [x0, y0, x1, y1] = onCanvas(m.box);
    octx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  octx.setLineDash([]);
  const list = data.characters.map((c) => {
    const [x0, y0, x1, y1] = onCanvas(c.box);
    octx.strokeStyle = octx.fillStyle = c.unsure ? "#d08a00" : "#2f6fde";
    octx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    octx.fillText(c.character, x0 + 2, Math.max(16, y0 - 4));
    const li = document.createElement("li");
    li.dataset.character = c.character;
    li.dataset.unsure = String(c.unsure);
    const b = document.createElement("b");
    b.textContent = c.unsure ? `${c.character}?` : c.character;
    li.append(b, ...c.top.map((t) => Object.assign(document.createElement("span"), { textContent: `${t.character} ${percent(t.probability)}` })));
    return li;
  });
  $("chars").replaceChildren(...list);
}

function clearResults() {
  const pred = $("prediction");
  pred.textContent = "?";
  pred.dataset.character = "";
  pred.dataset.unsure = "";
  pred.classList.add("empty");
  pred.classList.remove("unsure");
  $("verdict").textContent = "";
  $("seen").removeAttribute("src");
  $("bars").replaceChildren();
  $("text").textContent = "";
  $("text").dataset.text = "";
  $("chars").replaceChildren();
  status("");
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function clearAll() {
  clearTimeout(timer);
  timer = 0;
  epoch += 1;
  resetCanvas();
  clearResults();
  mark();
}

function setMode(next) {
  mode = next;
  $("char-result").hidden = mode === "line";
  $("line-result").hidden = mode !== "line";
  clearAll();
}

async function loadModel() {
  try {
    const info = await (await fetch("/api/model")).json();
    const parts = [`${info.classes} classes`];
    if (info.params != null) parts.push(`${Number(info.params).toLocaleString("en")} parameters`);
    if (info.test_accuracy != null) {
      // A figure from the synthetic sample is not an EMNIST result, and must not read like one.
      const on = info.synthetic ? "on the synthetic sample, not EMNIST" : `on its test set${info.split ? ` (split ${info.split})` : ""}`;
      parts.push(`test accuracy ${percent(info.test_accuracy)} ${on}`);
    } else if (info.synthetic) {
      parts.push("trained on the synthetic sample, not EMNIST");
    }
    $("model").textContent = `model ${info.name}: ${parts.join(", ")}`;
  } catch (err) {
    $("model").textContent = "model information unavailable";
  }
}

// --- wiring -------------------------------------------------------------------------------

canvas.addEventListener("pointerdown", startStroke);
canvas.addEventListener("pointermove", moveStroke);
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
$("clear").addEventListener("click", clearAll);
$("file").addEventListener("change", (e) => {
  if (e.target.files.length) showUpload(e.target.files[0]);
  e.target.value = ""; // choosing the same file again still counts as a change
});
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", () => setMode(radio.value));
}
$("charset").addEventListener("change", () => schedule(0)); // the same drawing, read again within the new set
const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("dragging");
});
drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("dragging");
  if (e.dataTransfer.files.length) showUpload(e.dataTransfer.files[0]);
});

setMode(document.querySelector('input[name="mode"]:checked').value);
loadModel();
