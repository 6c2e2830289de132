// The Design panel: a voice described in words. Preview speaks the description through the
// design model (the direct path: model "qwen3-tts-voice-design", voice "design", the
// description as instructions); Save sends POST /v1/audio/voices {"type": "prompt", ...}: the
// design model speaks the script once, and the saved voice is the Base model's from then on.

import { postJson } from "./api.js";

const VOICES = "/v1/audio/voices";
// What Preview says when no script is given.
const PREVIEW_TEXT = "Hello! This is how the voice you described sounds.";

export class DesignPanel {
  constructor({ section, form, fields, voices, speak, showError }) {
    this.section = section;
    this.form = form;
    this.fields = fields; // description, language, name, script, preview, save, off, message
    this.voices = voices;
    this.speak = speak; // (overrides, note) => Promise: the page's own speaker
    this.showError = showError; // (error | null) => void
    this.design = null; // /health's voice_design section
    fields.preview.addEventListener("click", () => this.preview());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  // From /health: whether the server serves the design model, and the names it answers to.
  update(health) {
    const design = health?.voice_design;
    if (!design) return; // an anonymous caller on a keyed server sees no sections
    this.design = design;
    this.section.dataset.enabled = String(Boolean(design.enabled));
    this.fields.off.hidden = design.enabled;
    this.fields.off.textContent = design.enabled ? "" : `Off on this server: ${design.how_to_enable}.`;
    for (const control of this.form.querySelectorAll("input, select, textarea, button")) control.disabled = !design.enabled;
  }

  description() {
    const value = this.fields.description.value.trim();
    if (!value) {
      this.showError(new Error("Describe the voice first (for example: a warm, low voice, speaking slowly)."));
      this.fields.description.focus();
    }
    return value;
  }

  async preview() {
    this.showError(null);
    const description = this.description();
    if (!description || !this.design?.enabled) return;
    await this.speak(
      {
        model: this.design.model,
        voice: this.design.voice,
        instructions: description,
        input: this.fields.script.value.trim() || PREVIEW_TEXT,
        language: this.fields.language.value || undefined,
      },
      "Preview of the described voice",
    );
  }

  async save() {
    const { name, script, language, save, message } = this.fields;
    this.showError(null);
    message.textContent = "";
    const description = this.description();
    if (!description) return;
    if (!name.value.trim()) {
      this.showError(new Error("Give the voice a name to save it under."));
      name.focus();
      return;
    }
    const body = { type: "prompt", name: name.value.trim(), prompt: description };
    if (script.value.trim()) body.script_hint = script.value.trim();
    if (language.value) body.language = language.value;
    save.disabled = true;
    message.textContent = "Saving (the design model speaks the script, the Base model learns it)…";
    try {
      const voice = await (await postJson(VOICES, body)).json();
      await this.voices.load();
      this.voices.select(voice.id);
      message.textContent = `Saved "${voice.name}" (${voice.id}); it is selected in the voice picker.`;
      name.value = "";
    } catch (error) {
      message.textContent = "";
      this.showError(error);
    } finally {
      save.disabled = false;
    }
  }
}
