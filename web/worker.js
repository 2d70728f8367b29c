// Runs the models off the main thread, one wasm instance per model, so the page keeps painting
// while the runtime works and each token can be shown as soon as it exists.
//
// in:  { type: 'load', id, kind, blob }   then   { type: 'run', id, run, input }
// out: { type: 'ready', id, info } | { type: 'token', run, ... } | { type: 'done', run, ... }
//      | { type: 'error', id, run, message }

import { Translator } from './pico.js';

const wasm = fetch('picoformer.wasm')
  .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`picoformer.wasm: HTTP ${r.status}`))))
  .then((b) => WebAssembly.compile(b));

// What each model kind does with its instance. A new kind adds an entry here and one in app.js.
const kinds = {
  translate: {
    async load(blob) {
      const t = await Translator.load(await wasm, blob);
      return { session: t, info: { maxLen: t.maxLen, arenaBytes: t.arenaBytes, blobBytes: blob.byteLength } };
    },
    // Greedy translation, streamed: one message per token, then the counts and the time.
    run(t, text, post) {
      const t0 = performance.now();
      const sourceIds = t.encode(text);
      let tokens = 0;
      let first = null;
      for (let p; (p = t.next()); tokens++) {
        if (first === null) first = performance.now() - t0;
        post({ type: 'token', id: p.id, text: p.text });
      }
      const ms = performance.now() - t0;
      post({
        type: 'done', ms, firstMs: first ?? ms, tokens,
        units: { text_byte: new TextEncoder().encode(text).length, source_id: sourceIds, decoder_step: t.steps() },
      });
    },
  },
};

const models = new Map(); // id -> Promise<{ kind, session }>

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.arrayBuffer();
}

onmessage = async ({ data: m }) => {
  try {
    if (m.type === 'load') {
      const kind = kinds[m.kind];
      if (!kind) throw new Error(`unknown model kind ${m.kind}`);
      const loaded = fetchBytes(m.blob).then((b) => kind.load(b)).then((r) => ({ kind, ...r }));
      models.set(m.id, loaded);
      postMessage({ type: 'ready', id: m.id, info: (await loaded).info });
    } else if (m.type === 'run') {
      const { kind, session } = await models.get(m.id);
      kind.run(session, m.input, (msg) => postMessage({ ...msg, id: m.id, run: m.run }));
    }
  } catch (e) {
    postMessage({ type: 'error', id: m.id, run: m.run, message: String(e.message ?? e) });
  }
};
