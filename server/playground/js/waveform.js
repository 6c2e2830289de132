// The waveform as it grows: min/max peaks per 10 ms block of samples, drawn across a time
// axis that starts at a few seconds and widens as the audio gets longer.

import { SAMPLE_RATE } from "./pcm.js";

const BLOCK = SAMPLE_RATE / 100;
const MIN_SECONDS = 4;

export class Waveform {
  constructor(canvas) {
    this.canvas = canvas;
    this.reset();
  }

  reset() {
    this.mins = [];
    this.maxs = [];
    this.partial = { min: 0, max: 0, count: 0 };
    this.playhead = 0;
    this.scheduled = false;
    this.draw();
  }

  add(samples) {
    let { min, max, count } = this.partial;
    for (const value of samples) {
      if (value < min) min = value;
      if (value > max) max = value;
      if (++count === BLOCK) {
        this.mins.push(min);
        this.maxs.push(max);
        min = max = count = 0;
      }
    }
    this.partial = { min, max, count };
    this.request();
  }

  setPlayhead(seconds) {
    this.playhead = seconds;
    this.request();
  }

  request() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    const style = getComputedStyle(canvas);
    ctx.clearRect(0, 0, width, height);
    const middle = height / 2;
    ctx.fillStyle = style.getPropertyValue("--wave-axis").trim() || "#ccc";
    ctx.fillRect(0, Math.floor(middle), width, Math.max(1, ratio));

    const blocks = this.mins.length;
    const seconds = Math.max(MIN_SECONDS, blocks / 100);
    const blocksPerPixel = (seconds * 100) / width;
    ctx.fillStyle = style.getPropertyValue("--wave").trim() || "#36c";
    for (let x = 0; x < width; x++) {
      const first = Math.floor(x * blocksPerPixel);
      if (first >= blocks) break;
      const last = Math.min(blocks, Math.max(first + 1, Math.floor((x + 1) * blocksPerPixel)));
      let low = 0;
      let high = 0;
      for (let b = first; b < last; b++) {
        if (this.mins[b] < low) low = this.mins[b];
        if (this.maxs[b] > high) high = this.maxs[b];
      }
      const top = middle - high * middle * 0.95;
      const bottom = middle - low * middle * 0.95;
      ctx.fillRect(x, top, 1, Math.max(ratio, bottom - top));
    }
    if (this.playhead > 0) {
      ctx.fillStyle = style.getPropertyValue("--wave-playhead").trim() || "#e33";
      ctx.fillRect(Math.min(width - ratio, (this.playhead / seconds) * width), 0, Math.max(1, ratio), height);
    }
  }
}
