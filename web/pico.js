// The loader for picoformer.wasm's C ABI (web/src/lib.rs): one wasm instance per model, no
// imports, no generated glue. Runs in a worker, a page or node (it takes bytes, not URLs).

const END = -1;
const ERR = -2;

export class PicoError extends Error {}

// What pf_load returns: the blob's model kind.
export const KINDS = ['translate', 'generate', 'classify'];

// One model and its greedy session: translate (encode, next), generate (encode the prompt,
// next) or classify (classify a window).
export class Session {
  // wasm: the module's bytes (or a compiled WebAssembly.Module); blob: the model's bytes.
  static async load(wasm, blob) {
    const instance = await WebAssembly.instantiate(
      wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm), {});
    return new Session(instance.exports, new Uint8Array(blob));
  }

  constructor(x, blob) {
    this.x = x;
    const ptr = x.pf_alloc(blob.length);
    if (ptr === 0) throw new PicoError(`no memory for a ${blob.length}-byte blob`);
    this.bytes(ptr, blob.length).set(blob);
    this.kind = KINDS[this.check(x.pf_load(ptr, blob.length))];
    this.maxLen = x.pf_max_len();
    this.nFeatures = x.pf_n_features();
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

  // Copy `text` into the module's text buffer; returns its UTF-8 length.
  put(text) {
    const utf8 = new TextEncoder().encode(text);
    if (utf8.length > this.textCap) throw new PicoError(`the text is longer than ${this.textCap} bytes`);
    this.bytes(this.x.pf_text(), utf8.length).set(utf8);
    return utf8.length;
  }

  // Tokenize and encode `text` (translate: the source, eos included, 0 for a text without
  // pieces; generate: bos and the prompt); returns the number of ids.
  encode(text) {
    return this.check(this.x.pf_encode(this.put(text)));
  }

  // The next token as { id, text }, or { id: null, text } at the end of the output (`text`:
  // what the decoder still held, usually '').
  next() {
    const id = this.check(this.x.pf_next());
    return { id: id === END ? null : id, text: this.out() };
  }

  // Classify one window (CSV, a frame per line): { class, scores } with the scores as the
  // CLI prints them.
  classify(csv) {
    const c = this.check(this.x.pf_classify(this.put(csv)));
    return { class: c, scores: this.out() };
  }

  // Decoder steps run for the current input (the eos step included); a window's frames.
  steps() {
    return this.x.pf_steps();
  }
}
