// The page: a tab per model in models.json, and per model kind a panel that takes the input,
// shows the output as it streams from the worker, and what the same input costs on a Cortex-M4.

const worker = new Worker('worker.js', { type: 'module' });
const $ = (sel, root = document) => root.querySelector(sel);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const mega = (n) => `${(n / 1e6).toFixed(2)} M`;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

async function json(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

// The Cortex-M4 figure for an input: the firmware's exact count when this very input was
// measured (same text or test window, same unit counts), otherwise the measured per-unit rates
// times the units the worker reports for it.
export function m4Cost(costs, key, units) {
  const same = (c) => c.text === key && Object.entries(units).every(([k, v]) => c.units[k] === v);
  const hit = costs.cases.find(same);
  if (hit) return { kind: 'measured', instructions: hit.instructions, parts: hit.parts };
  const instructions = Object.entries(costs.per_unit).reduce((s, [k, r]) => s + r * (units[k] ?? 0), 0);
  return { kind: 'estimate', instructions: Math.round(instructions) };
}

const UNIT_NAMES = {
  text_byte: 'per text byte (tokenizer)',
  source_id: 'per source token (encoder)',
  prompt_id: 'per prompt token (the prompt pass)',
  decoder_step: 'per decoder step',
  frame: 'per frame of the window',
};

function costNote(costs) {
  const rates = Object.entries(costs.per_unit).map(([k, r], i) => `${fmt(r)}${i ? '' : ' instructions'} ${UNIT_NAMES[k] ?? k}`);
  return el('p', { class: 'source' },
    'Cortex-M4 counts: ', el('code', {}, costs.command), ` at commit ${costs.commit} (${costs.date}), `,
    ...costs.machine.split(/(-icount shift=\d+)/).map((t, i) => (i % 2 ? el('code', { class: 'nowrap' }, t) : t)),
    `; ${costs.qemu.replace(/ \(.*/, '')}. Estimates use the measured rates: ${rates.join(', ')}; they were within `,
    `${(100 * costs.estimate_error.max).toFixed(1)}% on the measured cases (leave-one-out). `,
    `Time = instructions at ${costs.clock_hz / 1e6} MHz, one instruction per cycle: an order of magnitude.`);
}

function m4Stat(stat, costs, cost, measuredDetail) {
  const value = cost.kind === 'measured' ? `${fmt(cost.instructions)} instructions` : `≈ ${mega(cost.instructions)} instructions`;
  const detail = cost.kind === 'measured' ? `measured: ${measuredDetail(cost.parts)}` : 'estimated (this input was not measured) from the measured per-unit costs';
  stat('Cortex-M4', value, `${detail}; ≈ ${(cost.instructions / costs.clock_hz).toFixed(3)} s at ${costs.clock_hz / 1e6} MHz`,
    { id: 'm4', 'data-kind': cost.kind, 'data-instructions': String(cost.instructions) });
}

// The parts shared by every panel: the model's note, the output, the stats and the sources.
function frame(model, costs, info, controls, output) {
  const stats = el('dl', { id: 'stats' });
  const panel = el('section', { class: 'panel' },
    el('p', { class: 'about' }, model.about),
    ...controls,
    el('label', { for: 'output' }, model.output.label),
    output,
    stats,
    costNote(costs),
    el('p', { class: 'source' }, `Blob ${fmt(info.blobBytes)} bytes, arena ${fmt(info.arenaBytes)} bytes (greedy), `,
      `max_len ${info.maxLen}.`));
  const stat = (name, value, detail, attrs = {}) =>
    stats.append(el('dt', {}, name), el('dd', attrs, el('strong', {}, value), detail ? el('span', {}, detail) : ''));
  return { panel, stats, stat };
}

// Translate and generate: a text in, tokens streamed out. `idsUnit` is the unit the worker
// reports the input's ids in; `idsName` and `parts` name them and the measured parts.
function streaming({ idsUnit, idsName, button: buttonText, parts }) {
  return (model, costs, info, run) => {
    const input = el('textarea', {
      id: 'input', rows: 3, lang: model.input.lang, placeholder: model.input.placeholder, spellcheck: 'false',
      onkeydown: (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); go(); } },
    });
    const button = el('button', { id: 'run', onclick: () => go() }, buttonText);
    const output = el('output', { id: 'output', lang: model.output.lang, 'data-run': '0', 'aria-live': 'polite' });
    const examples = el('div', { class: 'examples' }, el('span', {}, 'Measured on the M4: '),
      ...costs.cases.map((c) => el('button', {
        class: 'example', title: c.text,
        onclick: () => { input.value = c.text; go(); },
      }, c.text.length > 34 ? `${c.text.slice(0, 32)}…` : c.text)));
    const go = () => run(input.value);
    const { panel, stats, stat } = frame(model, costs, info, [
      el('label', { for: 'input' }, model.input.label), el('div', { class: 'row' }, input, button), examples], output);
    let current = null;

    function on(m) {
      if (m.type === 'start') {
        current = m;
        output.replaceChildren();
        output.dataset.state = 'running';
        delete output.dataset.ids;
        stats.replaceChildren();
        button.disabled = true;
      } else if (m.run !== current?.run) {
        // a message from a run that a newer one replaced
      } else if (m.type === 'token') {
        output.append(el('span', { class: 'tok', title: `token ${m.id}` }, m.text));
      } else if (m.type === 'tail') {
        output.append(m.text);
      } else if (m.type === 'done') {
        const u = m.units;
        const cost = m4Cost(costs, current.input, u);
        stat('Tokens', `${u[idsUnit]} ${idsName} → ${m.tokens} tokens out`,
          `${u.decoder_step} decoder steps, eos included`, { id: 'tokens' });
        stat('Here', `${m.ms.toFixed(1)} ms`,
          `WebAssembly in this browser, first token after ${m.firstMs.toFixed(1)} ms`, { id: 'time' });
        m4Stat(stat, costs, cost, (p) => parts.map((k) => `${k} ${mega(p[k])}`).join(', '));
        output.dataset.ids = u[idsUnit];
        output.dataset.state = 'done';
        output.dataset.run = String(current.run);
        button.disabled = false;
      } else if (m.type === 'error') {
        output.replaceChildren(el('span', { class: 'error' }, m.message));
        output.dataset.state = 'error';
        output.dataset.run = String(current.run);
        button.disabled = false;
      }
    }
    return { panel, on, focus: () => input.focus() };
  };
}

// Test-set windows from a CSV: a frame per line, windows between blank lines.
function windows(csv) {
  return csv.split(/\r?\n\s*\r?\n/).map((w) => w.trim()).filter(Boolean);
}

// Per kind: build the panel for one model. `run(input)` sends the input to the worker; the
// returned `on(msg)` receives the worker's messages for this model.
const kinds = {
  translate: streaming({ idsUnit: 'source_id', idsName: 'source ids (eos included)', button: 'Translate', parts: ['tokenize', 'encode', 'decode'] }),
  generate: streaming({ idsUnit: 'prompt_id', idsName: 'prompt ids (bos included)', button: 'Continue', parts: ['tokenize', 'prompt', 'decode'] }),

  // A window of feature frames in, a class out. The test set's windows are offered by index.
  async classify(model, costs, info, run) {
    const [test, truth] = await Promise.all([
      fetch(model.test_windows).then((r) => r.text()).then(windows),
      fetch(model.test_labels).then((r) => r.text()).then((t) => t.split('\n').filter((l) => l.trim()).map(Number)),
    ]);
    const name = (c) => (model.labels?.[c] ? `${c} (${model.labels[c]})` : `${c}`);
    const pick = el('input', { id: 'window', type: 'number', min: 0, max: test.length - 1, value: 0,
      onchange: () => load(Number(pick.value)) });
    const input = el('textarea', { id: 'input', rows: 8, spellcheck: 'false', class: 'csv' });
    const button = el('button', { id: 'run', onclick: () => go() }, 'Classify');
    const output = el('output', { id: 'output', 'data-run': '0', 'aria-live': 'polite' });
    let shown = null; // the test window in the text box, while unedited
    const load = (k) => { pick.value = k; input.value = test[k]; shown = k; };
    input.addEventListener('input', () => { shown = null; });
    const go = () => run(input.value);
    const examples = el('div', { class: 'examples' }, el('span', {}, 'Measured on the M4: '),
      ...costs.cases.map((c) => el('button', {
        class: 'example', onclick: () => { load(Number(c.text.replace(/\D+/g, ''))); go(); },
      }, c.text)));
    const { panel, stats, stat } = frame(model, costs, info, [
      el('label', { for: 'window' }, `Test window (0-${test.length - 1} of the test set)`), pick,
      el('label', { for: 'input' }, model.input.label), el('div', { class: 'row' }, input, button), examples], output);
    load(0);
    let current = null;

    function on(m) {
      if (m.type === 'start') {
        current = { ...m, window: shown };
        output.replaceChildren();
        output.dataset.state = 'running';
        stats.replaceChildren();
        button.disabled = true;
      } else if (m.run !== current?.run) {
        // a message from a run that a newer one replaced
      } else if (m.type === 'done') {
        const k = current.window;
        output.append(el('strong', {}, `class ${name(m.class)}`),
          k === null ? '' : el('span', { class: 'truth' }, `  test label ${name(truth[k])}${truth[k] === m.class ? ' ✓' : ' ✗'}`));
        stat('Scores', `[${m.scores}]`, "the head's outputs, dequantized", { id: 'scores' });
        stat('Here', `${m.ms.toFixed(2)} ms`, `WebAssembly in this browser, ${m.units.frame} frames`, { id: 'time' });
        m4Stat(stat, costs, m4Cost(costs, k === null ? null : `test window ${k}`, m.units), (p) => `the whole pass ${mega(p.classify)}`);
        output.dataset.class = String(m.class);
        output.dataset.scores = m.scores;
        output.dataset.state = 'done';
        output.dataset.run = String(current.run);
        button.disabled = false;
      } else if (m.type === 'error') {
        output.replaceChildren(el('span', { class: 'error' }, m.message));
        output.dataset.state = 'error';
        output.dataset.run = String(current.run);
        button.disabled = false;
      }
    }
    return { panel, on, focus: () => input.focus() };
  },
};

async function main() {
  const { models } = await json('models.json');
  const nav = $('#models');
  const main = $('#panel');
  const views = new Map(); // id -> Promise<view>
  let runs = 0;

  function view(model) {
    if (!views.has(model.id)) {
      views.set(model.id, (async () => {
        const costs = await json(model.costs);
        worker.postMessage({ type: 'load', id: model.id, kind: model.kind, blob: model.blob });
        const info = await new Promise((resolve, reject) => {
          handlers.set(model.id, (m) => (m.type === 'ready' ? resolve(m.info) : reject(new Error(m.message))));
        });
        const run = (input) => {
          runs += 1;
          v.on({ type: 'start', run: runs, input });
          worker.postMessage({ type: 'run', id: model.id, run: runs, input });
        };
        const v = await kinds[model.kind](model, costs, info, run);
        handlers.set(model.id, (m) => v.on(m));
        return v;
      })());
    }
    return views.get(model.id);
  }

  async function show(model) {
    for (const b of nav.children) b.setAttribute('aria-selected', String(b.dataset.id === model.id));
    try {
      const v = await view(model);
      main.replaceChildren(v.panel);
      v.focus();
    } catch (e) {
      main.replaceChildren(el('p', { class: 'error' }, `Could not load ${model.title}: ${e.message}`));
    }
  }

  const handlers = new Map();
  worker.onmessage = ({ data: m }) => handlers.get(m.id)?.(m);
  nav.append(...models.map((m) => el('button', { role: 'tab', 'data-id': m.id, onclick: () => show(m) }, m.title)));
  nav.hidden = models.length < 2;
  await show(models.find((m) => `#${m.id}` === location.hash) ?? models[0]);
}

async function offline() {
  const note = $('#offline');
  if (!('serviceWorker' in navigator)) {
    note.textContent = 'This browser cannot keep the page for offline use.';
    return;
  }
  try {
    await navigator.serviceWorker.register('sw.js');
    await navigator.serviceWorker.ready;
    note.textContent = 'Saved for offline use: the page, the runtime and the model work without a network.';
    note.dataset.ready = 'true';
  } catch (e) {
    note.textContent = `Offline use unavailable: ${e.message}`;
  }
}

main().catch((e) => $('#panel').replaceChildren(el('p', { class: 'error' }, String(e))));
offline();
