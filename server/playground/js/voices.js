// Voices: the picker (Qwen speakers, mapped names such as OpenAI's, saved voices, grouped), the list of
// saved voices with Use / Play sample / Delete, and the form that saves a new one from an
// uploaded or recorded reference.

import { deleteJson, getJson, postForm } from "./api.js";
import { canRecord, Recorder } from "./recorder.js";

const VOICES = "/v1/audio/voices";
const MAX_RECORD_MS = 30000;

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

function group(label, options) {
  const element = document.createElement("optgroup");
  element.label = label;
  element.append(...options);
  return element;
}

function button(text, action, label) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.dataset.action = action;
  element.setAttribute("aria-label", label);
  return element;
}

export class Voices {
  constructor({ picker, list, empty, onSample, onChange, onError }) {
    this.picker = picker;
    this.list = list;
    this.empty = empty;
    this.onSample = onSample; // (voice) => void
    this.onChange = onChange; // () => void, after the picker's choices changed
    this.onError = onError; // (error) => void
    this.saved = [];
    picker.addEventListener("change", () => onChange());
    list.addEventListener("click", (event) => this.clicked(event));
  }

  // How the server's logs label a voice ("saved:<id>" for saved ones), as a person would.
  label(logged) {
    if (!logged.startsWith("saved:")) return logged.replace("->", " → ");
    const id = logged.slice("saved:".length);
    return this.saved.find((voice) => voice.id === id)?.name ?? "saved voice";
  }

  // The saved voice chosen in the picker, or null for a preset.
  get selectedSaved() {
    return this.saved.find((voice) => voice.id === this.picker.value) || null;
  }

  async load() {
    const { voices } = await getJson(VOICES);
    const previous = this.picker.value;
    const speakers = voices.filter((v) => v.type === "preset" && !v.speaker && !("voice" in v));
    const openai = voices.filter((v) => v.type === "preset" && (v.speaker || "voice" in v));
    this.saved = voices.filter((v) => v.type !== "preset");
    const groups = [
      group("Qwen speakers", speakers.map((v) => option(v.id, v.name))),
      group("Mapped names", openai.map((v) => option(v.id, `${v.name} → ${v.speaker || v.voice}`))),
    ];
    if (this.saved.length) groups.push(group("Saved voices", this.saved.map((v) => option(v.id, v.name))));
    this.picker.replaceChildren(...groups);
    if ([...this.picker.options].some((o) => o.value === previous)) this.picker.value = previous;
    this.renderList();
    this.onChange();
  }

  renderList() {
    const items = this.saved.map((voice) => {
      const item = document.createElement("li");
      item.dataset.voiceId = voice.id;
      item.dataset.voiceName = voice.name;
      const name = document.createElement("span");
      name.className = "voice-name";
      name.textContent = voice.name;
      const meta = document.createElement("span");
      meta.className = "muted";
      const mode = voice.type === "prompt" ? `designed: ${voice.description}` : voice.mode === "icl" ? "with transcript" : "speaker embedding";
      item.dataset.voiceType = voice.type;
      meta.textContent = `${mode} · ${new Date(voice.created_at * 1000).toLocaleDateString(undefined, { dateStyle: "medium" })}`;
      const actions = document.createElement("span");
      actions.className = "voice-actions";
      actions.append(
        button("Use", "use", `Use ${voice.name}`),
        button("Play sample", "sample", `Play a sample of ${voice.name}`),
        button("Delete", "delete", `Delete ${voice.name}`),
      );
      item.append(name, meta, actions);
      return item;
    });
    this.list.replaceChildren(...items);
    this.list.dataset.count = String(items.length);
    this.empty.hidden = items.length > 0;
  }

  async clicked(event) {
    const target = event.target.closest("button[data-action]");
    if (!target) return;
    const voice = this.saved.find((v) => v.id === target.closest("li").dataset.voiceId);
    if (!voice) return;
    if (target.dataset.action === "use") {
      this.select(voice.id);
    } else if (target.dataset.action === "sample") {
      this.onSample(voice);
    } else if (target.dataset.action === "delete" && confirm(`Delete the saved voice "${voice.name}"?`)) {
      try {
        await deleteJson(`${VOICES}/${encodeURIComponent(voice.id)}`);
        await this.load();
      } catch (error) {
        this.onError(error);
      }
    }
  }

  select(id) {
    this.picker.value = id;
    this.onChange();
    this.picker.focus();
  }

  async create(form) {
    const voice = await postForm(VOICES, form);
    await this.load();
    this.select(voice.id);
    return voice;
  }
}

// The new-voice form: a reference from a file or the microphone, its transcript, consent.
export class VoiceForm {
  constructor({ form, fields, voices, showError }) {
    this.form = form;
    this.fields = fields;
    this.voices = voices;
    this.showError = showError; // (error | null) => void
    this.reference = null; // the File to upload
    this.recorder = new Recorder();
    this.previewUrl = null;
    fields.file.addEventListener("change", () => {
      if (fields.file.files.length) this.use(fields.file.files[0], "file");
    });
    fields.record.addEventListener("click", () => this.toggleRecording());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    if (!canRecord()) {
      fields.record.disabled = true;
      fields.record.title = "Recording needs the page on https or on localhost";
    }
  }

  use(file, source) {
    this.reference = file;
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = URL.createObjectURL(file);
    this.fields.preview.src = this.previewUrl;
    this.fields.preview.hidden = false;
    const size = `${(file.size / 1024).toFixed(0)} KiB`;
    this.fields.summary.textContent = `Reference: ${file.name} (${source === "file" ? "uploaded" : "recorded"}, ${size})`;
    this.fields.summary.dataset.source = source;
  }

  async toggleRecording() {
    const { record, summary } = this.fields;
    this.showError(null);
    if (this.recorder.recording) {
      clearInterval(this.ticker);
      record.textContent = "Record";
      record.dataset.recording = "false";
      const recordedMs = Math.round(this.recorder.elapsedMs);
      const file = await this.recorder.stop();
      this.fields.file.value = "";
      this.use(file, "recording");
      summary.dataset.recordedMs = String(recordedMs);
      summary.textContent += `, ${(recordedMs / 1000).toFixed(1)} s`;
      return;
    }
    try {
      await this.recorder.start();
    } catch (error) {
      this.showError(new Error(`The microphone is not available: ${error.message}`));
      return;
    }
    record.textContent = "Stop recording";
    record.dataset.recording = "true";
    this.ticker = setInterval(() => {
      const elapsed = this.recorder.elapsedMs;
      summary.dataset.recordedMs = String(Math.round(elapsed));
      summary.textContent = `Recording… ${(elapsed / 1000).toFixed(1)} s (up to 30 s)`;
      if (elapsed >= MAX_RECORD_MS) this.toggleRecording();
    }, 100);
  }

  async submit() {
    const { name, refText, consent, consentLabel, save, message } = this.fields;
    this.showError(null);
    message.textContent = "";
    if (!this.reference) {
      this.showError(new Error("Choose a reference: upload a file or record one."));
      return;
    }
    if (!consent.checked) {
      this.showError(new Error("Saving a cloned voice needs the speaker's consent: tick the box."));
      consent.focus();
      return;
    }
    const form = new FormData();
    form.append("name", name.value.trim());
    form.append("audio_sample", this.reference, this.reference.name);
    if (refText.value.trim()) form.append("ref_text", refText.value.trim());
    form.append("consent", consentLabel.textContent.trim());
    save.disabled = true;
    message.textContent = "Saving (the server computes the voice prompt)…";
    try {
      const voice = await this.voices.create(form);
      message.textContent = `Saved "${voice.name}" (${voice.id}); it is selected in the voice picker.`;
      this.form.reset();
      this.reference = null;
      this.fields.preview.hidden = true;
      this.fields.summary.textContent = "No reference chosen.";
    } catch (error) {
      message.textContent = "";
      this.showError(error);
    } finally {
      save.disabled = false;
    }
  }
}
