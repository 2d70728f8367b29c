// Runs the models off the main thread, one wasm instance per model, so the page keeps painting
// while the runtime works and each token can be shown as soon as it exists.
//
// in:  { type: 'load', id, kind, blob }   then   { type: 'run', id, run, input }
// out: { type: 'ready', id, info } | { type: 'token', run, ... } | { type: 'done', run, ... }
//      | { type: 'error', id, run, message }

import { Session } from './pico.js';

const wasm = fetch('picoformer.wasm')
  .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`picoformer.wasm: HTTP ${r.status}`))))
  .then((b) => WebAssembly.compile(b));

async function load(blob, want) {
  const t = await Session.load(await wasm, blob);
  if (t.kind !== want) throw new Error(`the blob is a ${t.kind} model, models.json says ${want}`);
  return { session: t, info: { maxLen: t.maxLen, arenaBytes: t.arenaBytes, blobBytes: blob.byteLength, nFeatures: t.nFeatures } };
}

// Greedy decoding, streamed: one message per token, then the counts and the time.
function stream(t, text, post, idsUnit) {
  const t0 = performance.now();
  const ids = t.encode(text);
  let tokens = 0;
  let first = null;
  for (;;) {
    const p = t.next();
    if (p.id === null) {
      if (p.text) post({ type: 'tail', text: p.text });
      break;
    }
    tokens += 1;
    if (first === null) first = performance.now() - t0;
    post({ type: 'token', id: p.id, text: p.text });
  }
  const ms = performance.now() - t0;
  post({
    type: 'done', ms, firstMs: first ?? ms, tokens,
    units: { text_byte: new TextEncoder().encode(text).length, [idsUnit]: ids, decoder_step: t.steps() },
  });
}

// What each model kind does with its instance. A new kind adds an entry here and one in app.js.
const kinds = {
  translate: {
    load: (blob) => load(blob, 'translate'),
    run: (t, text, post) => stream(t, text, post, 'source_id'),
  },
  generate: {
    load: (blob) => load(blob, 'generate'),
    run: (t, text, post) => stream(t, text, post, 'prompt_id'),
  },
  // One window (CSV rows) at a time: the class, the head's outputs, the time.
  classify: {
    load: (blob) => load(blob, 'classify'),
    run(t, csv, post) {
      const t0 = performance.now();
      const r = t.classify(csv);
      post({ type: 'done', ms: performance.now() - t0, class: r.class, scores: r.scores, units: { frame: t.steps() } });
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
