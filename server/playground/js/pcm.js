// The server's PCM: signed 16-bit little-endian mono at 24 kHz. Network chunks may split a
// sample in two, so the decoder carries an odd trailing byte over to the next chunk.

export const SAMPLE_RATE = 24000;

export class Pcm16Decoder {
  constructor() {
    this.carry = null; // a lone byte left from the previous chunk
  }

  // Bytes in, float32 samples in [-1, 1) out.
  decode(bytes) {
    let data = bytes;
    if (this.carry !== null) {
      data = new Uint8Array(bytes.length + 1);
      data[0] = this.carry;
      data.set(bytes, 1);
      this.carry = null;
    }
    const whole = data.length - (data.length % 2);
    if (whole < data.length) this.carry = data[data.length - 1];
    const view = new DataView(data.buffer, data.byteOffset, whole);
    const samples = new Float32Array(whole / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
    return samples;
  }

  // True when the stream ended on half a sample (the server never sends one).
  get pending() {
    return this.carry !== null;
  }
}

export function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// The received int16 bytes wrapped in a 44-byte WAV header with exact sizes.
export function wavBlob(chunks, byteLength) {
  const header = new DataView(new ArrayBuffer(44));
  const ascii = (offset, text) => [...text].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  header.setUint32(4, 36 + byteLength, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  header.setUint32(16, 16, true); // fmt chunk size
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, SAMPLE_RATE, true);
  header.setUint32(28, SAMPLE_RATE * 2, true); // bytes per second
  header.setUint16(32, 2, true); // bytes per frame
  header.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  header.setUint32(40, byteLength, true);
  return new Blob([header, ...chunks], { type: "audio/wav" });
}
