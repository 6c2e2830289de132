// One Speak: POST /v1/audio/speech for raw PCM, either as a chunked byte stream
// (stream_format "audio") or as OpenAI's SSE events with base64 deltas (stream_format
// "sse"), played through Web Audio as it arrives while the waveform and timings update.
// With `timestamps` in the body (SSE only), each segment's words follow its audio and are
// lit up as playback reaches them.
//
// The result element carries the outcome as data attributes (state, samples, timings),
// which is what a person reads on screen and what the browser tests wait on.

import { ApiError, postJson } from "./api.js";
import { base64Bytes, Pcm16Decoder, SAMPLE_RATE } from "./pcm.js";
import { PcmPlayer } from "./player.js";
import { sseData } from "./sse.js";

const SPEECH = "/v1/audio/speech";

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export class Speaker {
  constructor({ result, waveform, words, fields, audioContext }) {
    this.result = result;
    this.waveform = waveform;
    this.words = words; // WordTrack
    this.fields = fields; // the <dd> elements of the stats
    this.audioContext = audioContext; // () => AudioContext | null, made on a user gesture
    this.controller = null;
    this.player = null;
    this.chunks = []; // the raw int16 bytes received, for the pcm and wav downloads
    this.byteLength = 0;
    this.started = 0; // performance.now() when the request was sent
  }

  // Streams `body` (without format fields) in `mode` ("audio" or "sse"). Resolves when the
  // stream has ended or was stopped (playback may still be going on); throws ApiError on
  // failure. One at a time: the caller waits for the previous one after stop().
  async speak(body, mode) {
    const controller = new AbortController();
    this.controller = controller;
    this.reset(mode, body.seed);
    const context = this.audioContext();
    this.player = context ? new PcmPlayer(context) : null;
    const started = performance.now();
    this.started = started;
    try {
      const request = { ...body, response_format: "pcm", stream_format: mode };
      const response = await postJson(SPEECH, request, { signal: controller.signal });
      const requestId = response.headers.get("X-Request-ID") || "";
      this.result.dataset.requestId = requestId;
      this.fields.request.textContent = requestId ? requestId.slice(0, 8) : "–";
      this.fields.request.title = requestId;
      this.result.dataset.instructionsIgnored = response.headers.has("X-Instructions-Ignored") ? "true" : "false";
      if (mode === "sse") await this.readEvents(response);
      else await this.readBytes(response);
      this.finish("done", performance.now() - started);
    } catch (error) {
      const stopped = error.name === "AbortError";
      this.finish(stopped ? "stopped" : "error", performance.now() - started);
      if (!stopped) throw error;
    } finally {
      if (this.controller === controller) this.controller = null;
      this.playOut(); // what arrived before an error still plays
    }
  }

  async readBytes(response) {
    const decoder = new Pcm16Decoder();
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      this.receive(value, decoder);
    }
    if (decoder.pending) throw new ApiError(0, "the audio stream ended in the middle of a sample");
  }

  async readEvents(response) {
    const decoder = new Pcm16Decoder();
    for await (const data of sseData(response.body)) {
      const event = JSON.parse(data);
      if (event.type === "speech.audio.delta") {
        this.receive(base64Bytes(event.audio), decoder);
      } else if (event.type === "speech.audio.timestamps") {
        this.words.addSegment(event);
      } else if (event.type === "speech.audio.done") {
        this.result.dataset.outputTokens = String(event.usage?.output_tokens ?? "");
        return;
      } else if (event.type === "speech.audio.error") {
        throw new ApiError(0, event.error?.message || "synthesis failed", event.error || {});
      }
    }
    throw new ApiError(0, "the event stream ended without speech.audio.done");
  }

  receive(bytes, decoder) {
    const samples = decoder.decode(bytes);
    this.chunks.push(bytes);
    this.byteLength += bytes.length;
    if (!samples.length) return;
    const total = Number(this.result.dataset.samples) + samples.length;
    if (this.result.dataset.ttfaMs === "") {
      const ttfa = performance.now() - this.started;
      this.result.dataset.ttfaMs = String(Math.round(ttfa));
      this.fields.ttfa.textContent = formatMs(ttfa);
      this.result.dataset.playback = this.player ? "playing" : "unavailable";
      if (this.player) this.follow(this.player);
    }
    this.result.dataset.samples = String(total);
    this.result.dataset.chunks = String(Number(this.result.dataset.chunks) + 1);
    this.fields.samples.textContent = total.toLocaleString("en");
    this.fields.audio.textContent = `${(total / SAMPLE_RATE).toFixed(2)} s`;
    this.fields.total.textContent = `${formatMs(performance.now() - this.started)}…`;
    this.waveform.add(samples);
    if (this.player) this.player.push(samples);
  }

  reset(mode, seed) {
    const data = this.result.dataset;
    Object.assign(data, {
      state: "speaking",
      playback: "idle",
      mode,
      samples: "0",
      chunks: "0",
      ttfaMs: "",
      totalMs: "",
      requestId: "",
      instructionsIgnored: "false",
      outputTokens: "",
    });
    this.chunks = [];
    this.byteLength = 0;
    this.waveform.reset();
    this.words.reset();
    for (const field of Object.values(this.fields)) field.textContent = "–";
    this.fields.seed.textContent = seed === undefined ? "–" : String(seed);
  }

  finish(state, totalMs) {
    this.result.dataset.totalMs = String(Math.round(totalMs));
    this.fields.total.textContent = formatMs(totalMs);
    this.result.dataset.state = state;
  }

  // Moves the playhead (and the spoken words) with playback until the stream has ended and
  // all of it has played; played out to the end, every word is spoken.
  follow(player) {
    const step = () => {
      if (this.player !== player) return;
      this.waveform.setPlayhead(player.position);
      this.words.setPosition(player.position);
      if (player.playing.size || this.result.dataset.state === "speaking") requestAnimationFrame(step);
      else {
        this.waveform.setPlayhead(0);
        if (this.result.dataset.playback !== "stopped") this.words.setPosition(Infinity);
      }
    };
    requestAnimationFrame(step);
  }

  // Marks the result "ended" once everything received has played.
  async playOut() {
    const player = this.player;
    if (!player || this.result.dataset.playback !== "playing") return;
    await player.finished();
    if (this.player === player && this.result.dataset.playback === "playing") this.result.dataset.playback = "ended";
  }

  stop() {
    if (this.controller) this.controller.abort();
    if (this.player) this.player.stop();
    if (this.result.dataset.playback === "playing") this.result.dataset.playback = "stopped";
  }
}
