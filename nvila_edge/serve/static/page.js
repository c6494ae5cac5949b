"use strict";
// Browsers open at most 6 connections per server over HTTP/1.1; the event feed holds one and each live
// preview another, so previews past this many refresh a still frame instead and requests never queue.
const MAX_LIVE_PREVIEWS = 3;
const STILL_REFRESH_MS = 1000;
const RECONNECT_MS = 2000;
const EVENT_LOG_SIZE = 60;

const $ = (selector, root = document) => root.querySelector(selector);
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const page = { key: "", lastEventId: null, events: null, streams: new Map(), chat: null };

function authHeaders(extra = {}) {
  return page.key ? { ...extra, Authorization: `Bearer ${page.key}` } : extra;
}

async function failure(response) {
  const body = await response.json().catch(() => null);
  const reason = body?.error?.message || `${response.status} ${response.statusText}`;
  return new Error(response.status === 401 ? `${reason} (enter the API key at the top)` : reason);
}

async function api(method, path, body) {
  const init = { method, headers: authHeaders(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// --- server-sent events read through fetch, so the Authorization header can go with them ---------------
async function* readSse(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "", held = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    let chunk = held + value;
    held = chunk.endsWith("\r") ? "\r" : "";  // a CRLF split across chunks must not read as two line ends
    if (held) chunk = chunk.slice(0, -1);
    text += chunk.replace(/\r\n?/g, "\n");
    let end;
    while ((end = text.indexOf("\n\n")) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const event = { id: null, data: [] };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
      }
      if (event.data.length) yield { ...event, data: event.data.join("\n") };
    }
  }
}

// --- live previews: the MJPEG stream parsed part by part into images ---------------------------------------
function indexOfBytes(haystack, needle, from) {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concatBytes(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a); out.set(b, a.length);
  return out;
}

function showJpeg(img, bytes) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" }));
  const old = img.dataset.url;
  img.dataset.url = url;
  img.src = url;
  if (old) URL.revokeObjectURL(old);
}

async function followMjpeg(img, path, signal) {
  const response = await fetch(path, { headers: authHeaders(), signal });
  if (!response.ok) throw await failure(response);
  const boundary = /boundary="?([^";]+)/.exec(response.headers.get("Content-Type") || "")?.[1] || "frame";
  const marker = new TextEncoder().encode(`--${boundary.replace(/^--/, "")}`);
  const blank = new TextEncoder().encode("\r\n\r\n");
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = concatBytes(buffer, value);
    for (;;) {  // one part: boundary line, headers, blank line, JPEG bytes (Content-Length of them if given)
      const start = indexOfBytes(buffer, marker, 0);
      const headEnd = start < 0 ? -1 : indexOfBytes(buffer, blank, start);
      if (headEnd < 0) break;
      const head = new TextDecoder().decode(buffer.subarray(start, headEnd));
      const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
      const body = headEnd + blank.length;
      let end = Number.isFinite(length) ? body + length : indexOfBytes(buffer, marker, body);
      if (end < 0 || end > buffer.length) break;
      showJpeg(img, buffer.slice(body, end));
      buffer = buffer.slice(end);
    }
  }
}

async function refreshStill(img, path, signal) {
  for (;;) {
    const response = await fetch(path, { headers: authHeaders(), signal, cache: "no-store" });
    if (response.ok) showJpeg(img, new Uint8Array(await response.arrayBuffer()));
    await sleep(STILL_REFRESH_MS);
  }
}

function startPreview(stream, live) {
  stream.preview?.abort();
  const control = new AbortController();
  stream.preview = control;
  stream.live = live;
  const img = $(".preview", stream.card);
  img.title = live ? "live preview with the newest answers" : "still frame, refreshed every second";
  const base = `/v1/streams/${encodeURIComponent(stream.id)}`;
  (async () => {
    while (!control.signal.aborted) {
      try {
        await (live ? followMjpeg(img, `${base}/preview.mjpg`, control.signal)
                    : refreshStill(img, `${base}/frame.jpg`, control.signal));
      } catch (err) {
        if (control.signal.aborted) return;
      }
      await sleep(RECONNECT_MS);
    }
  })();
}

function assignPreviews(restart = false) {  // the first streams get live previews, the rest still frames
  [...page.streams.values()].forEach((stream, index) => {
    const live = index < MAX_LIVE_PREVIEWS;
    if (restart || !stream.preview || stream.live !== live) startPreview(stream, live);
  });
}

// --- streams, prompts and alerts on the page ---------------------------------------------------------------
function setBadge(el, state) {
  const text = state === true ? "true" : state === false ? "false" : String(state ?? "unknown");
  el.dataset.state = text;
  el.textContent = text;
}

function streamCard(info) {
  let stream = page.streams.get(info.id);
  if (!stream) {
    const card = $("#stream-card").content.firstElementChild.cloneNode(true);
    card.dataset.id = info.id;
    stream = { id: info.id, card, rules: new Map(), preview: null, live: false };
    page.streams.set(info.id, stream);
    $(".remove", card).onclick = () => removeStream(stream);
    $("#streams").append(card);
    assignPreviews();
  }
  if (info.name || info.source) {
    $(".name", stream.card).textContent = info.name || info.source;
    updateStreamChoices();
  }
  if (info.source) $(".source", stream.card).textContent = info.source;
  if (info.state) setBadge($(".state", stream.card), info.state);
  if (info.detail !== undefined) $(".state", stream.card).title = info.detail || "";
  $("#empty").hidden = page.streams.size > 0;
  return stream;
}

function ruleRow(stream, kind, info) {
  const key = `${kind}:${info.id}`;
  let row = stream.rules.get(key);
  if (!row) {
    row = $("#rule-row").content.firstElementChild.cloneNode(true);
    row.className = kind;
    row.dataset.id = info.id;
    if (kind === "prompt") $(".state", row).remove();
    $(".remove", row).onclick = async () => {
      await api("DELETE", `/v1/streams/${encodeURIComponent(stream.id)}/${kind}s/${encodeURIComponent(info.id)}`)
        .then(() => { row.remove(); stream.rules.delete(key); }, err => logLine(`error: ${err.message}`));
    };
    stream.rules.set(key, row);
    $(`.${kind}s`, stream.card).append(row);
  }
  if (info.prompt) $(".prompt", row).textContent = info.prompt;
  if (info.answer != null) $(".answer", row).textContent = info.answer;
  if (kind === "alert" && "state" in info) setBadge($(".state", row), info.state);
  return row;
}

function showLatest(stream, latest) {
  for (const prompt of latest.prompts) ruleRow(stream, "prompt", prompt);
  for (const alert of latest.alerts) ruleRow(stream, "alert", alert);
}

async function loadStreams() {
  const streams = (await api("GET", "/v1/streams")).data;
  const seen = new Set(streams.map(s => s.id));
  for (const stream of [...page.streams.values()]) if (!seen.has(stream.id)) dropStream(stream);
  for (const info of streams) {
    const stream = streamCard(info);
    showLatest(stream, await api("GET", `/v1/streams/${encodeURIComponent(info.id)}/latest`));
  }
}

function dropStream(stream) {
  stream.preview?.abort();
  const img = $(".preview", stream.card);
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  stream.card.remove();
  page.streams.delete(stream.id);
  assignPreviews();
  $("#empty").hidden = page.streams.size > 0;
  updateStreamChoices();
}

async function removeStream(stream) {
  try { await api("DELETE", `/v1/streams/${encodeURIComponent(stream.id)}`); dropStream(stream); }
  catch (err) { logLine(`error: ${err.message}`); }
}

function updateStreamChoices() {
  for (const select of document.querySelectorAll(".stream-choice")) {
    const chosen = select.value;
    select.replaceChildren(...[...page.streams.values()].map(s => new Option($(".name", s.card).textContent, s.id)));
    if (page.streams.has(chosen)) select.value = chosen;
  }
}

// --- the event feed ---------------------------------------------------------------------------------------
function logLine(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("#events").prepend(item);
  while ($("#events").children.length > EVENT_LOG_SIZE) $("#events").lastElementChild.remove();
}

// Event types and fields as docs/service.md lists them: answer, alert (state changes), stream, events_lost.
function applyEvent(event) {
  const stream = page.streams.get(event.stream_id);
  if (event.type === "stream") {
    if (event.detail === "deleted") { if (stream) dropStream(stream); }
    else if (stream) streamCard({ id: event.stream_id, state: event.state, detail: event.detail });
    else api("GET", `/v1/streams/${encodeURIComponent(event.stream_id)}`).then(streamCard, () => {});  // added elsewhere
    logLine(`stream ${event.stream_id}: ${event.state}${event.detail ? ` (${event.detail})` : ""}`);
  } else if (event.type === "alert") {
    if (stream) ruleRow(stream, "alert", { ...event, id: event.alert_id });
    logLine(`alert ${event.stream_id}/${event.alert_id}: ${event.previous} -> ${event.state} (${event.prompt})`);
  } else if (event.type === "answer") {
    if (stream) ruleRow(stream, "prompt", { ...event, id: event.prompt_id });
    logLine(`answer ${event.stream_id}/${event.prompt_id}: ${event.answer}`);
  } else if (event.type === "events_lost") {
    logLine(`missed ${event.lost} events while away; reloading`);
    loadStreams().catch(err => logLine(`error: ${err.message}`));
  }
}

async function followEvents(control) {
  while (!control.signal.aborted) {
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (page.lastEventId != null) headers["Last-Event-ID"] = page.lastEventId;
      const response = await fetch("/v1/events", { headers, signal: control.signal });
      if (!response.ok) throw await failure(response);
      setBadge($("#events-state"), "live");
      await loadStreams();  // catch up on what happened before the feed (or while it was down)
      for await (const event of readSse(response)) {
        if (event.id != null) page.lastEventId = event.id;
        applyEvent(JSON.parse(event.data));
      }
    } catch (err) {
      if (control.signal.aborted) return;
      logLine(`events: ${err.message}`);
    }
    setBadge($("#events-state"), "reconnecting");
    await sleep(RECONNECT_MS);
  }
}

function connect() {
  page.events?.abort();
  page.events = new AbortController();
  followEvents(page.events);
  assignPreviews(true);
  api("GET", "/v1/models").then(models => {
    page.model = models.data[0]?.id;
    $("#model").textContent = page.model ? `model: ${page.model}` : "";
  }, () => {});
}

// --- forms ------------------------------------------------------------------------------------------------
function submitWith(form, action) {
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const msg = $(".msg", form), button = $("button", form);
    msg.className = "msg"; msg.textContent = ""; button.disabled = true;
    try { msg.textContent = (await action()) || ""; }
    catch (err) { msg.className = "msg error"; msg.textContent = err.message; }
    finally { button.disabled = false; }
  });
}

submitWith($("#add-stream"), async () => {
  const body = { source: $("#stream-source").value.trim() };
  if ($("#stream-name").value.trim()) body.name = $("#stream-name").value.trim();
  const info = await api("POST", "/v1/streams", body);
  streamCard(info);
  $("#prompt-stream").value = $("#alert-stream").value = info.id;
  return `added ${info.name || info.id}`;
});

submitWith($("#add-prompt"), async () => {
  const stream = page.streams.get($("#prompt-stream").value);
  if (!stream) throw new Error("add a stream first");
  const body = { prompt: $("#prompt-text").value.trim(), every_s: Number($("#prompt-every").value) };
  if ($("#prompt-frames").value) body.frames = Number($("#prompt-frames").value);
  ruleRow(stream, "prompt", await api("POST", `/v1/streams/${encodeURIComponent(stream.id)}/prompts`, body));
  return "prompt added";
});

submitWith($("#add-alert"), async () => {
  const stream = page.streams.get($("#alert-stream").value);
  if (!stream) throw new Error("add a stream first");
  const body = { prompt: $("#alert-prompt").value.trim() };
  ruleRow(stream, "alert", await api("POST", `/v1/streams/${encodeURIComponent(stream.id)}/alerts`, body));
  return "alert added";
});

// --- chat about an uploaded image, answer streamed from /v1/chat/completions ---------------------------------
function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

$("#chat-image").addEventListener("change", async () => {
  const file = $("#chat-image").files[0], thumb = $("#chat-thumb");
  thumb.style.display = file ? "block" : "none";
  if (file) thumb.src = await readDataUrl(file);
});

$("#chat-stop").onclick = () => page.chat?.abort();

submitWith($("#chat"), async () => {
  const file = $("#chat-image").files[0];
  const content = [{ type: "text", text: $("#chat-prompt").value.trim() }];
  if (file) content.push({ type: "image_url", image_url: { url: await readDataUrl(file) } });
  const request = { model: page.model, messages: [{ role: "user", content }], stream: true,
                    stream_options: { include_usage: true }, max_tokens: Number($("#chat-max-tokens").value) || 64 };
  const answer = $("#chat-answer"), usage = $("#chat-usage");
  answer.textContent = ""; usage.textContent = "";
  page.chat = new AbortController();
  $("#chat-stop").disabled = false;
  const started = performance.now();
  let firstToken = null;
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", signal: page.chat.signal,
      headers: authHeaders({ "Content-Type": "application/json" }), body: JSON.stringify(request) });
    if (!response.ok) throw await failure(response);
    for await (const event of readSse(response)) {
      if (event.data === "[DONE]") break;
      const chunk = JSON.parse(event.data);
      if (chunk.error) throw new Error(chunk.error.message);
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) { firstToken ??= performance.now(); answer.textContent += text; }
      if (chunk.usage) {
        const u = chunk.usage;
        usage.textContent = `${u.prompt_tokens} prompt tokens (${u.visual_tokens} visual), ` +
          `${u.completion_tokens} answer token${u.completion_tokens === 1 ? "" : "s"}` +
          (firstToken ? `, first token after ${Math.round(firstToken - started)} ms` : "");
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") throw err;
  } finally {
    $("#chat-stop").disabled = true;
    page.chat = null;
  }
  return "";
});

$("#key").addEventListener("change", () => { page.key = $("#key").value.trim(); connect(); });
connect();
