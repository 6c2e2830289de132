// The playground page: wires the form, the speaker, voices and the server panel together.

import { ApiError, apiKey, attachmentName, getJson, postJson, setApiKey } from "./api.js";
import { DesignPanel } from "./design.js";
import { JobsPanel } from "./jobs.js";
import { wavBlob } from "./pcm.js";
import { PronunciationEditor, SSML_EXAMPLE } from "./pronunciations.js";
import { Speaker } from "./speak.js";
import { ServerPanel } from "./status.js";
import { VoiceForm, Voices } from "./voices.js";
import { Waveform } from "./waveform.js";
import { WordTrack } from "./words.js";

const MAX_INPUT_CHARS = 4096;
const MAX_SEED = 2 ** 31 - 1;
const SAMPLE_TEXT = "Hello! This is a sample of my saved voice.";

const $ = (id) => document.getElementById(id);
const form = $("speak-form");
const text = $("text");
const keyForm = $("key-form");

function show(element, error) {
  element.hidden = !error;
  element.textContent = error ? (error instanceof ApiError ? error.describe() : error.message) : "";
  element.dataset.status = error instanceof ApiError ? String(error.status) : "";
  if (error instanceof ApiError && error.status === 401) askForKey();
}

const showError = (error) => show($("error"), error);
const showVoiceError = (error) => show($("voice-error"), error);
const showDesignError = (error) => show($("design-error"), error);

// Shows the key field (focused the first time only: the panel's polling also lands here).
function askForKey() {
  if (!keyForm.hidden) return;
  keyForm.hidden = false;
  $("api-key").focus();
}

let context = null;
function audioContext() {
  // Made (or resumed) inside the click that starts speech: browsers allow audio then.
  try {
    context ??= new AudioContext();
    if (context.state === "suspended") context.resume().catch(() => {});
  } catch {
    context = null; // no audio output: the page still decodes and draws
  }
  return context;
}

const speaker = new Speaker({
  result: $("result"),
  waveform: new Waveform($("waveform")),
  words: new WordTrack($("words")),
  fields: {
    ttfa: $("stat-ttfa"),
    total: $("stat-total"),
    audio: $("stat-audio"),
    samples: $("stat-samples"),
    seed: $("stat-seed"),
    request: $("stat-request"),
  },
  audioContext,
});

let health = null;
let lastBody = null; // what the last speech was made from, seed included, for downloads

const voices = new Voices({
  picker: $("voice"),
  list: $("saved-voices"),
  empty: $("no-voices"),
  onSample: (voice) => speak({ input: SAMPLE_TEXT, voice: voice.id }, `Sample of "${voice.name}"`),
  onChange: updateInstructions,
  onError: showVoiceError,
});

new VoiceForm({
  form: $("voice-form"),
  fields: {
    name: $("voice-name"),
    file: $("voice-file"),
    record: $("record"),
    summary: $("reference-summary"),
    preview: $("reference-preview"),
    refText: $("voice-ref-text"),
    consent: $("voice-consent"),
    consentLabel: $("voice-consent-label"),
    save: $("voice-save"),
    message: $("voice-message"),
  },
  voices,
  showError: showVoiceError,
});

const design = new DesignPanel({
  section: $("design"),
  form: $("design-form"),
  fields: {
    description: $("design-description"),
    language: $("design-language"),
    name: $("design-name"),
    script: $("design-script"),
    preview: $("design-preview"),
    save: $("design-save"),
    off: $("design-off"),
    message: $("design-message"),
  },
  voices,
  speak: (overrides, note) => speak(overrides, note),
  showError: showDesignError,
});

new JobsPanel({
  section: $("jobs"),
  form: $("jobs-form"),
  fields: {
    text: $("jobs-text"),
    file: $("jobs-file"),
    format: $("jobs-format"),
    submit: $("jobs-submit"),
    progress: $("jobs-progress"),
    status: $("jobs-status"),
    audio: $("jobs-audio"),
    download: $("jobs-download"),
    chapters: $("jobs-chapters"),
    subtitles: $("jobs-subtitles"),
  },
  voice: () => $("voice").value,
  showError: (error) => show($("jobs-error"), error),
});

const panel = new ServerPanel({
  pill: $("server-pill"),
  summary: $("server-summary"),
  slots: $("slots"),
  recent: $("recent"),
  voiceLabel: (logged) => voices.label(logged),
  onHealth: (report) => {
    health = report;
    updateInstructions();
    updateTimestamps();
    design.update(report);
  },
  onError: (error) => {
    if (error instanceof ApiError && error.status === 401) askForKey();
  },
});

// Instructions are greyed out when the voice's model would ignore them: saved voices run
// on the Base model, and 0.6B CustomVoice models drop instructions.
function updateInstructions() {
  const input = $("instructions");
  const note = $("instructions-note");
  const presetModel = health?.models?.custom_voice;
  let ignoredBecause = null;
  if (voices.selectedSaved) ignoredBecause = "Saved voices run on the Base model, which does not follow instructions.";
  else if (presetModel?.honours_instructions === false)
    ignoredBecause = `The loaded model (${presetModel.model_id}) does not follow instructions.`;
  input.disabled = ignoredBecause !== null;
  $("instructions-field").classList.toggle("disabled", input.disabled);
  if (ignoredBecause) note.textContent = ignoredBecause;
  else if (presetModel?.honours_instructions) note.textContent = "The loaded model follows instructions.";
  else note.textContent = "Followed by models that support them (1.7B CustomVoice); known once the model is loaded.";
}

// Word timestamps need the server's aligner (/health's `aligner`); they come on SSE events
// only, so asking for them selects that streaming mode.
function updateTimestamps() {
  const box = $("timestamps");
  const aligner = health?.aligner;
  if (!aligner) return; // not known yet (or /health answered without details: no key)
  box.disabled = !aligner.enabled;
  if (box.disabled) box.checked = false;
  $("timestamps-field").classList.toggle("disabled", box.disabled);
  $("timestamps-note").textContent = aligner.enabled ? "" : `Off on this server: ${aligner.how_to_enable}.`;
  updateStreamMode();
}

function wordsWanted() {
  return $("timestamps").checked && !$("timestamps").disabled;
}

function updateStreamMode() {
  const mode = $("stream-mode");
  if (wordsWanted()) mode.value = "sse";
  mode.disabled = wordsWanted();
  mode.title = mode.disabled ? "Word timestamps come on SSE events" : "";
}

function numberField(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

// The request body from the form; a seed is drawn when none is given, so the download in
// another format reproduces exactly the audio that was heard.
function bodyFromForm() {
  const body = { model: "qwen3-tts", input: text.value, voice: $("voice").value, speed: Number($("speed").value) };
  if ($("language").value) body.language = $("language").value;
  const instructions = $("instructions");
  if (!instructions.disabled && instructions.value.trim()) body.instructions = instructions.value.trim();
  for (const input of document.querySelectorAll("[data-sampling]")) {
    const value = numberField(input.id);
    if (value !== undefined) body[input.id] = value;
  }
  body.seed = numberField("seed") ?? Math.floor(Math.random() * MAX_SEED);
  if (wordsWanted()) body.timestamps = true;
  const entries = pronunciations.entries();
  if (entries.length) body.pronunciations = entries;
  return body;
}

// A new speech replaces the one in progress: that one is stopped, and this one starts once
// it has wound down.
let speaking = Promise.resolve();
function speak(overrides = {}, note = "") {
  speaker.stop();
  speaking = speaking.then(() => speakNow(overrides, note));
  return speaking;
}

async function speakNow(overrides, note) {
  showError(null);
  const body = { ...bodyFromForm(), ...overrides };
  lastBody = body;
  $("result-note").textContent = note;
  $("speak").disabled = true;
  $("stop").disabled = false;
  $("download").disabled = true;
  try {
    await speaker.speak(body, body.timestamps ? "sse" : $("stream-mode").value);
    const notes = note ? [note] : [];
    if ($("result").dataset.instructionsIgnored === "true") notes.push("The server reported the instructions as ignored.");
    if (context && context.state !== "running")
      notes.push("The browser's audio output is not running (no output device?): download the audio instead.");
    $("result-note").textContent = notes.join(" · ");
  } catch (error) {
    showError(error);
  } finally {
    $("speak").disabled = false;
    $("stop").disabled = true;
    $("download").disabled = !speaker.byteLength;
    panel.refresh();
  }
}

function save(blob, name) {
  const link = $("download-link");
  URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
}

// pcm and wav are built from the bytes received; other formats are encoded by the server
// from the same request (same seed), answered whole.
async function download() {
  const format = $("format").value;
  const button = $("download");
  button.dataset.state = "preparing";
  button.disabled = true;
  showError(null);
  try {
    let blob;
    let name = `speech.${format}`;
    if (format === "pcm") blob = new Blob(speaker.chunks, { type: "audio/pcm" });
    else if (format === "wav") blob = wavBlob(speaker.chunks, speaker.byteLength);
    else {
      const { timestamps: _words, ...audioOnly } = lastBody; // a file has no place for them
      const response = await postJson("/v1/audio/speech", { ...audioOnly, response_format: format, stream: false });
      blob = await response.blob();
      name = attachmentName(response, name);
    }
    save(blob, name);
    Object.assign(button.dataset, { state: "saved", bytes: String(blob.size), name });
  } catch (error) {
    button.dataset.state = "error";
    showError(error);
  } finally {
    button.disabled = false;
  }
}

function updateCount() {
  const count = text.value.length;
  const counter = $("char-count");
  counter.textContent = `${count.toLocaleString("en")} / ${MAX_INPUT_CHARS.toLocaleString("en")}`;
  counter.classList.toggle("over", count > MAX_INPUT_CHARS);
}

function updateDownloadLabel() {
  $("download").textContent = `Download ${$("format").value}`;
}

async function loadVoices() {
  try {
    await voices.load();
    // The voice list is open (Open WebUI reads it without a key, and then sees no saved
    // voices); whether this server wants a key shows on a protected call.
    await getJson("/v1/models");
  } catch (error) {
    showError(error);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  speak();
});
text.addEventListener("input", updateCount);
const pronunciations = new PronunciationEditor($("pronunciation-list"), $("pronunciation-add"));
$("ssml-example").addEventListener("click", () => {
  text.value = SSML_EXAMPLE;
  updateCount();
  text.focus();
});
text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});
$("stop").addEventListener("click", () => speaker.stop());
$("download").addEventListener("click", download);
$("format").addEventListener("change", updateDownloadLabel);
$("timestamps").addEventListener("change", updateStreamMode);
$("speed").addEventListener("input", () => {
  $("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`;
});
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey($("api-key").value.trim());
  showError(null);
  loadVoices();
  panel.refresh();
});

if (apiKey()) {
  keyForm.hidden = false;
  $("api-key").value = apiKey();
}
updateCount();
updateDownloadLabel();
updateInstructions();
Promise.all([loadVoices(), panel.refresh()]).then(() => {
  document.body.dataset.ready = "true";
});
