// The server panel: /health (status, queue, model slots, GPU, saved voices) and
// /v1/requests/recent (the last requests' latency breakdown), refreshed every few seconds
// while the tab is visible and right after each request.

import { getJson } from "./api.js";

const POLL_MS = 5000;

function cell(text, className) {
  const element = document.createElement("td");
  element.textContent = text;
  if (className) element.className = className;
  return element;
}

function row(cells) {
  const element = document.createElement("tr");
  element.append(...cells);
  return element;
}

function ms(value) {
  return value === null || value === undefined ? "–" : String(Math.round(value));
}

function shortModel(id) {
  return id.replace(/\/+$/, "").split("/").pop();
}

export class ServerPanel {
  constructor({ pill, summary, slots, recent, voiceLabel, onHealth, onError }) {
    this.pill = pill;
    this.summary = summary;
    this.slots = slots;
    this.recent = recent;
    this.voiceLabel = voiceLabel; // (logged voice) => what to show
    this.onHealth = onHealth; // (health) => void
    this.onError = onError; // (error) => void, for errors other than an unreachable /health
    this.timer = null;
    document.addEventListener("visibilitychange", () => this.schedule());
  }

  schedule() {
    clearTimeout(this.timer);
    if (document.visibilityState === "visible") this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const health = await getJson("/health");
      this.renderHealth(health);
      this.onHealth(health);
    } catch (error) {
      this.pill.dataset.status = "down";
      this.pill.textContent = `server unreachable: ${error.message}`;
    }
    try {
      const { data } = await getJson("/v1/requests/recent");
      this.renderRecent(data);
    } catch (error) {
      this.onError(error);
    }
    this.schedule();
  }

  renderHealth(health) {
    this.pill.dataset.status = health.status;
    const loaded = Object.values(health.models).filter((slot) => slot.loaded).length;
    this.pill.textContent = `${health.status} · ${loaded} model${loaded === 1 ? "" : "s"} loaded`;
    const entries = [
      ["Queue", `${health.queue_depth} of ${health.max_queue_depth}`],
      ["Batch size", `up to ${health.max_batch_size}`],
      ["GPU", health.gpu ? `${health.gpu.name}, ${Math.round(health.gpu.allocated_mib)} of ${Math.round(health.gpu.total_mib)} MiB` : "none (CPU)"],
    ];
    if (health.clone) {
      const cache = health.clone.prompt_cache || {};
      entries.push(["Saved voices", String(health.clone.saved_voices)]);
      if (cache.hits !== undefined) entries.push(["Prompt cache", `${cache.hits} hits, ${cache.misses} misses`]);
    }
    this.summary.replaceChildren(
      ...entries.map(([term, value]) => {
        const wrapper = document.createElement("div");
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = term;
        dd.textContent = value;
        wrapper.append(dt, dd);
        return wrapper;
      }),
    );
    const rows = Object.entries(health.models).map(([name, slot]) => {
      const instructions = slot.honours_instructions === null ? "–" : slot.honours_instructions ? "followed" : "ignored";
      const state = slot.last_error ? `${slot.status} (error: ${slot.last_error})` : slot.status;
      const tr = row([
        cell(name),
        cell(shortModel(slot.model_id)),
        cell(state, `state state-${slot.status}`),
        cell(slot.device),
        cell(`${slot.load_count}`),
        cell(instructions),
      ]);
      tr.dataset.slot = name;
      tr.dataset.status = slot.status;
      tr.title = slot.model_id;
      return tr;
    });
    this.slots.tBodies[0].replaceChildren(...rows);
  }

  renderRecent(requests) {
    const rows = requests.map((r) =>
      row([
        cell(String(r.status), r.status === 200 ? "ok" : "bad"),
        cell(this.voiceLabel(r.voice)),
        cell(ms(r.queue_ms), "num"),
        cell(ms(r.load_ms), "num"),
        cell(ms(r.inference_ms), "num"),
        cell(ms(r.encode_ms), "num"),
        cell(ms(r.ttfa_ms), "num"),
        cell(ms(r.total_ms), "num"),
        cell(r.audio_seconds.toFixed(2), "num"),
      ]),
    );
    if (!rows.length) {
      const empty = cell("No speech requests yet.", "muted");
      empty.colSpan = 9;
      rows.push(row([empty]));
    }
    this.recent.tBodies[0].replaceChildren(...rows);
    this.recent.dataset.count = String(requests.length);
  }
}
