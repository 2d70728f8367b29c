// The loader for picoformer.wasm's C ABI (web/src/lib.rs): one wasm instance per model, no
// imports, no generated glue. Runs in a worker, a page or node (it takes bytes, not URLs).

const END = -1;
const ERR = -2;

export class PicoError extends Error {}

export class Translator {
  // wasm: the module's bytes (or a compiled WebAssembly.Module); blob: the model's bytes.
  static async load(wasm, blob) {
    const instance = await WebAssembly.instantiate(
      wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm), {});
    return new Translator(instance.exports, new Uint8Array(blob));
  }

  constructor(x, blob) {
    this.x = x;
    const ptr = x.pf_alloc(blob.length);
    if (ptr === 0) throw new PicoError(`no memory for a ${blob.length}-byte blob`);
    this.bytes(ptr, blob.length).set(blob);
    this.check(x.pf_load(ptr, blob.length));
    this.maxLen = x.pf_max_len();
    this.arenaBytes = x.pf_arena_bytes();
    this.textCap = x.pf_text_cap();
  }

  // A view of wasm memory (re-made each time: growing memory detaches the old buffer).
  bytes(ptr, len) {
    return new Uint8Array(this.x.memory.buffer, ptr, len);
  }

  out() {
    return new TextDecoder().decode(this.bytes(this.x.pf_out(), this.x.pf_out_len()));
  }

  check(status) {
    if (status === ERR) throw new PicoError(this.out());
    return status;
  }

  // Tokenize and encode `text`; returns the number of source ids (eos included).
  encode(text) {
    const utf8 = new TextEncoder().encode(text);
    if (utf8.length > this.textCap) throw new PicoError(`the text is longer than ${this.textCap} bytes`);
    this.bytes(this.x.pf_text(), utf8.length).set(utf8);
    return this.check(this.x.pf_encode(utf8.length));
  }

  // The next token as { id, text }, or null at the end of the sentence.
  next() {
    const id = this.check(this.x.pf_next());
    return id === END ? null : { id, text: this.out() };
  }

  // Decoder steps run for the current sentence (the eos step included).
  steps() {
    return this.x.pf_steps();
  }
}
