// The words of a timed speech (speech.audio.timestamps events on the SSE stream), one span
// per word the server's aligner placed, lit up as playback reaches each word's start.
//
// The element carries what a person sees as data attributes: count (words received),
// current (index of the word being spoken, -1 before the first) and errors (segments whose
// words could not be timed, shown as plain text with the reason on hover).

export class WordTrack {
  constructor(element) {
    this.element = element;
    this.reset();
  }

  reset() {
    this.element.replaceChildren();
    this.element.hidden = true;
    this.words = []; // {span, start}, in stream order, starts non-decreasing
    this.current = -1;
    Object.assign(this.element.dataset, { count: "0", current: "-1", errors: "0" });
  }

  // One segment's event: {segment, text, start_time, end_time, words: [{word, start_time, end_time}], error?}.
  addSegment(event) {
    this.element.hidden = false;
    if (event.error) {
      const untimed = document.createElement("span");
      untimed.className = "untimed";
      untimed.textContent = event.text;
      untimed.title = `not timed: ${event.error}`;
      this.element.append(untimed, " ");
      this.element.dataset.errors = String(Number(this.element.dataset.errors) + 1);
      return;
    }
    for (const word of event.words) {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = word.word;
      span.dataset.start = String(word.start_time);
      span.dataset.end = String(word.end_time);
      span.title = `${word.start_time.toFixed(2)}–${word.end_time.toFixed(2)} s`;
      this.element.append(span, " ");
      this.words.push({ span, start: word.start_time });
    }
    this.element.dataset.count = String(this.words.length);
  }

  // Every word whose start has been played is "spoken"; the last of them is "current".
  setPosition(seconds) {
    let current = -1;
    while (current + 1 < this.words.length && this.words[current + 1].start <= seconds) current += 1;
    if (current === this.current) return;
    this.words.forEach(({ span }, index) => {
      span.classList.toggle("spoken", index <= current);
      span.classList.toggle("current", index === current);
    });
    this.current = current;
    this.element.dataset.current = String(current);
  }
}
