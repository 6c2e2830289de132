// The Jobs panel: a long text (pasted, or a .txt/.md file) sent as a long-audio job
// (POST /v1/audio/jobs), its progress followed until it ends, then the result to play and
// download, its chapters and its subtitles (docs/jobs.md).

import { getJson, postForm, postJson, request } from "./api.js";

const JOBS = "/v1/audio/jobs";
const POLL_MS = 500;
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

function clock(seconds) {
  const whole = Math.floor(seconds);
  const minutes = Math.floor(whole / 60);
  return `${minutes}:${String(whole % 60).padStart(2, "0")}`;
}

export class JobsPanel {
  constructor({ section, form, fields, voice, showError }) {
    this.section = section;
    this.fields = fields; // text, file, format, submit, progress, status, audio, download, chapters, subtitles
    this.voice = voice; // () => the voice picked in the Speak panel
    this.showError = showError;
    this.url = null;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  async submit() {
    this.showError(null);
    const { text, file, format } = this.fields;
    const upload = file.files[0];
    if (!upload && !text.value.trim()) {
      this.showError(new Error("Paste a text or choose a .txt or .md file first."));
      return;
    }
    this.reset();
    this.fields.submit.disabled = true;
    try {
      let job;
      if (upload) {
        const form = new FormData();
        form.append("file", upload);
        form.append("voice", this.voice());
        form.append("response_format", format.value);
        job = await postForm(JOBS, form);
      } else {
        const body = { voice: this.voice(), input: text.value, response_format: format.value };
        job = await (await postJson(JOBS, body)).json();
      }
      this.section.dataset.jobId = job.id;
      await this.follow(job);
    } catch (error) {
      this.section.dataset.state = "error";
      this.showError(error);
    } finally {
      this.fields.submit.disabled = false;
    }
  }

  reset() {
    const { audio, download, chapters, subtitles, progress } = this.fields;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    audio.removeAttribute("src");
    audio.hidden = download.hidden = subtitles.hidden = true;
    chapters.replaceChildren();
    subtitles.textContent = "";
    progress.value = 0;
    delete this.section.dataset.jobId;
    this.section.dataset.state = "submitting";
  }

  // Polls the job (a browser's EventSource cannot send the API key) until it ends.
  async follow(job) {
    while (true) {
      this.show(job);
      if (FINAL.has(job.status)) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      job = await getJson(`${JOBS}/${job.id}`);
    }
    if (job.status !== "succeeded") {
      throw new Error(`The job ${job.status}: ${job.error ? job.error.message : "no reason given"}`);
    }
    await this.result(job);
    this.section.dataset.state = "succeeded";
  }

  show(job) {
    const p = job.progress;
    this.section.dataset.state = job.status;
    this.fields.progress.max = p.segments_total;
    this.fields.progress.value = p.segments_done;
    const left = p.estimated_seconds_left == null ? "" : `, about ${Math.ceil(p.estimated_seconds_left)} s left`;
    this.fields.status.textContent =
      `${job.status}: ${p.segments_done} of ${p.segments_total} segments, ` +
      `${p.audio_seconds.toFixed(1)} s of audio${left}`;
  }

  async result(job) {
    const { audio, download, chapters, subtitles } = this.fields;
    const blob = await (await request(`${JOBS}/${job.id}/content`)).blob();
    this.url = URL.createObjectURL(blob);
    this.section.dataset.bytes = String(blob.size);
    audio.src = this.url;
    download.href = this.url;
    download.download = `${job.id}.${job.response_format}`;
    audio.hidden = download.hidden = false;
    const listed = await getJson(`${JOBS}/${job.id}/chapters`);
    chapters.replaceChildren(
      ...listed.data.map((chapter) => {
        const item = document.createElement("li");
        const jump = document.createElement("button");
        jump.type = "button";
        jump.className = "link";
        jump.textContent = `${chapter.title || "Untitled"} · ${clock(chapter.start)}`;
        jump.addEventListener("click", () => {
          audio.currentTime = chapter.start;
          audio.play();
        });
        item.append(jump);
        return item;
      }),
    );
    subtitles.textContent = await (await request(`${JOBS}/${job.id}/subtitles?format=vtt`)).text();
    subtitles.hidden = false;
  }
}
