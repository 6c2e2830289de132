// The pronunciation list: rows of a written form and the alias read instead, sent as the
// request's `pronunciations` (docs/text-control.md); rows with either side empty are left out.
// And an SSML example for the text box, showing the elements the server follows.

export const SSML_EXAMPLE = `<speak xml:lang="en-US">
  <p>Welcome to <sub alias="the World Wide Web Consortium">W3C</sub>.<break time="500ms"/></p>
  <p>Your order <say-as interpret-as="digits">4096</say-as> ships on
    <say-as interpret-as="date" format="mdy">3/5/2026</say-as>.</p>
  <voice name="Ryan"><prosody rate="slow">A second voice, slower.</prosody></voice>
  <mark name="end"/>Thank you![pause:0.3s]
</speak>`;

export class PronunciationEditor {
  constructor(list, addButton) {
    this.list = list;
    addButton.addEventListener("click", () => this.add().querySelector("input").focus());
  }

  // A new row (written form, alias, remove button); the row.
  add(written = "", alias = "") {
    const row = document.createElement("tr");
    row.className = "pronunciation";
    for (const [name, value, label] of [
      ["text", written, "Written form"],
      ["alias", alias, "Read as"],
    ]) {
      const cell = document.createElement("td");
      const input = document.createElement("input");
      input.type = "text";
      input.maxLength = name === "text" ? 256 : 512;
      input.dataset.field = name;
      input.value = value;
      input.setAttribute("aria-label", label);
      cell.append(input);
      row.append(cell);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove this pronunciation");
    remove.addEventListener("click", () => row.remove());
    const cell = document.createElement("td");
    cell.append(remove);
    row.append(cell);
    this.list.append(row);
    return row;
  }

  // The entries to send: [{text, alias}], complete rows only.
  entries() {
    const out = [];
    for (const row of this.list.querySelectorAll("tr.pronunciation")) {
      const text = row.querySelector('[data-field="text"]').value;
      const alias = row.querySelector('[data-field="alias"]').value.trim();
      if (text.trim() && alias) out.push({ text: text.trim(), alias });
    }
    return out;
  }
}
