// A reference recording from the microphone through MediaRecorder. The browser picks the
// container (WebM/Opus in Chromium, Ogg/Opus in Firefox); the server decodes either.

const EXTENSIONS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a", "audio/wav": "wav" };

export function canRecord() {
  // getUserMedia exists only in secure contexts: https, or http on localhost.
  return Boolean(navigator.mediaDevices?.getUserMedia) && typeof MediaRecorder !== "undefined";
}

export class Recorder {
  constructor() {
    this.recorder = null;
    this.stream = null;
    this.parts = [];
    this.startedAt = 0;
  }

  get recording() {
    return this.recorder !== null && this.recorder.state === "recording";
  }

  get elapsedMs() {
    return this.recording ? performance.now() - this.startedAt : 0;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    this.parts = [];
    this.recorder = new MediaRecorder(this.stream);
    this.recorder.ondataavailable = (event) => {
      if (event.data.size) this.parts.push(event.data);
    };
    this.recorder.start();
    this.startedAt = performance.now();
  }

  // Stops and resolves to a File named after its container.
  stop() {
    const recorder = this.recorder;
    return new Promise((resolve, reject) => {
      recorder.onstop = () => {
        for (const track of this.stream.getTracks()) track.stop();
        const type = (recorder.mimeType || this.parts[0]?.type || "audio/webm").split(";")[0];
        const blob = new Blob(this.parts, { type });
        this.recorder = null;
        resolve(new File([blob], `recording.${EXTENSIONS[type] || "webm"}`, { type }));
      };
      recorder.onerror = (event) => reject(event.error || new Error("recording failed"));
      recorder.stop();
    });
  }
}
