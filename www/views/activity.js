// What is running on the one training worker, as the panels announce it. The worker runs one
// stage at a time and drops a second run without a word, so the DPO panel and the β sweep ask
// here before they start anything. It also times each stage's runs (wall seconds while
// 'running') and tells which run the session's π_θ and π_dpo came from.

export function trackActivity(store) {
  const states = new Map();
  const since = new Map();
  const wall = new Map();
  let sweep = false;
  const listeners = new Set();
  const tell = () => listeners.forEach((f) => { try { f(); } catch (e) { console.error(e); } });

  store.events.on('stage-state', ({ stage, state }) => {
    const before = states.get(stage);
    if (state === 'running' && before !== 'running') since.set(stage, performance.now());
    if (state !== 'running' && before === 'running' && since.has(stage)) {
      wall.set(stage, (wall.get(stage) ?? 0) + (performance.now() - since.get(stage)) / 1000);
      since.delete(stage);
    }
    if (state === 'ready' || state === 'blocked') wall.delete(stage);
    states.set(stage, state);
    tell();
  });
  store.events.on('sweep-state', ({ running }) => { sweep = running; tell(); });

  return {
    state: (stage) => states.get(stage),
    /** Stages running now (and 'the β sweep' while it runs). */
    busy: () => [...states].filter(([, s]) => s === 'running').map(([k]) => k).concat(sweep ? ['the β sweep'] : []),
    sweeping: () => sweep,
    /** Seconds `stage` has spent running since it last began. */
    wallSeconds: (stage) => (wall.get(stage) ?? 0) + (since.has(stage) ? (performance.now() - since.get(stage)) / 1000 : 0),
    onChange: (f) => { listeners.add(f); return () => listeners.delete(f); },
  };
}

/** "sft is running" → a sentence for a refused start. */
export function busyMessage(busy, what) {
  return `${what} waits: ${busy.join(' and ')} ${busy.length > 1 ? 'are' : 'is'} running on the training worker (one run at a time). Pause it first.`;
}
