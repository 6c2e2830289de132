// Plays PCM as it arrives: each chunk becomes an AudioBuffer scheduled right after the
// previous one, so playback starts with the first chunk and has no gaps while the network
// keeps ahead. Buffers are made at the server's rate; Web Audio resamples to the device's.

import { SAMPLE_RATE } from "./pcm.js";

// Head start for the first chunk, and after an underrun, so scheduling never lands in the past.
const LEAD_SECONDS = 0.08;

export class PcmPlayer {
  constructor(context) {
    this.context = context;
    this.next = 0; // context time at which the next chunk starts
    this.startedAt = null; // context time of the first sample
    this.playing = new Set();
    this.drained = null;
  }

  push(samples) {
    if (!samples.length) return;
    const buffer = this.context.createBuffer(1, samples.length, SAMPLE_RATE);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const start = Math.max(this.next, this.context.currentTime + LEAD_SECONDS);
    source.start(start);
    if (this.startedAt === null) this.startedAt = start;
    this.next = start + buffer.duration;
    this.playing.add(source);
    source.onended = () => {
      this.playing.delete(source);
      if (!this.playing.size && this.drained) this.drained();
    };
  }

  // Seconds played so far (for the waveform's playhead).
  get position() {
    return this.startedAt === null ? 0 : Math.max(0, this.context.currentTime - this.startedAt);
  }

  // Resolves once everything pushed so far has played.
  finished() {
    if (!this.playing.size) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  stop() {
    for (const source of this.playing) source.stop();
    this.playing.clear();
    if (this.drained) this.drained();
  }
}
