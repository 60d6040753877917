// IndexedDB: everything the learner makes, persisted as it is made — labels at once, a checkpoint
// at each stage's end, the steps' metrics with the trainer's snapshot at most a second apart — so a
// reload or a crash costs at most the last second of steps. Each write is one transaction: an
// import either lands whole or not at all.
const DB_NAME = 'rlhf-lab';
const DB_VERSION = 1;
const STORES = ['labels', 'checkpoints', 'metrics', 'state'];

let opening = null;

function open() {
  opening ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains('labels')) db.createObjectStore('labels', { keyPath: 'id', autoIncrement: true });
      if (!db.objectStoreNames.contains('checkpoints')) db.createObjectStore('checkpoints', { keyPath: 'role' });
      if (!db.objectStoreNames.contains('metrics')) db.createObjectStore('metrics', { keyPath: 'id', autoIncrement: true }).createIndex('stage', 'stage');
      if (!db.objectStoreNames.contains('state')) db.createObjectStore('state');
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new Error(`the browser's storage could not be opened: ${request.error?.message}`));
    request.onblocked = () => reject(new Error('the browser\'s storage is held by another tab of this lab; close it and reload'));
  });
  return opening;
}

const done = (request) => new Promise((resolve, reject) => {
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

async function transact(store, mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    let result;
    Promise.resolve(work(tx.objectStore(store))).then((r) => { result = r; }, reject);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('storage transaction aborted'));
  });
}

// ---- labels ----

/** Adds labels in one transaction (all or none); returns the new count. */
export async function addLabels(records) {
  await transact('labels', 'readwrite', (store) => { for (const r of records) store.add({ ...r }); });
  return countLabels();
}

export const countLabels = () => transact('labels', 'readonly', (store) => done(store.count()));

/** Every label, oldest first (without the storage id). */
export async function labels() {
  const all = await transact('labels', 'readonly', (store) => done(store.getAll()));
  return all.map(({ id, ...record }) => record);
}

/** Removes the most recent label (undo); returns it, or null if there were none. */
export async function removeLastLabel() {
  return transact('labels', 'readwrite', async (store) => {
    const cursor = await done(store.openCursor(null, 'prev'));
    if (!cursor) return null;
    const { id, ...record } = cursor.value;
    cursor.delete();
    return record;
  });
}

export const clearLabels = () => transact('labels', 'readwrite', (store) => done(store.clear()));

/** The labels as a JSON-lines file (the format `checkLabels` accepts). */
export async function labelsJsonl() {
  return (await labels()).map((r) => JSON.stringify(r)).join('\n') + '\n';
}

// ---- checkpoints ----

export const putCheckpoint = (role, bytes, note = {}) =>
  transact('checkpoints', 'readwrite', (store) => done(store.put({ role, bytes, note, time: Date.now() })));
export const getCheckpoint = (role) => transact('checkpoints', 'readonly', (store) => done(store.get(role)));
export const listCheckpoints = () =>
  transact('checkpoints', 'readonly', (store) => done(store.getAll())).then((all) => all.map(({ role, note, time, bytes }) => ({ role, note, time, size: bytes.byteLength })));
export const deleteCheckpoint = (role) => transact('checkpoints', 'readwrite', (store) => done(store.delete(role)));

// ---- metric history ----

export const appendMetrics = (stage, metrics) => transact('metrics', 'readwrite', (store) => done(store.add({ stage, metrics, time: Date.now() })));

export async function metricsOf(stage) {
  const rows = await transact('metrics', 'readonly', (store) => done(store.index('stage').getAll(stage)));
  return rows.map((r) => r.metrics);
}

export async function allMetrics() {
  return transact('metrics', 'readonly', (store) => done(store.getAll()));
}

export async function clearMetrics(stage) {
  return transact('metrics', 'readwrite', async (store) => {
    const keys = await done(store.index('stage').getAllKeys(stage));
    for (const key of keys) store.delete(key);
  });
}

// ---- pipeline state (what to offer to resume after a reload) ----

export const putState = (key, value) => transact('state', 'readwrite', (store) => done(store.put(value, key)));
export const getState = (key) => transact('state', 'readonly', (store) => done(store.get(key)));

// ---- snapshots of stages in progress (written by the worker, at most a second apart) ----

/**
 * Steps recorded whole: their metrics rows and (when there is one) the trainer's snapshot after
 * the last of them, in one transaction, so the history and the snapshot never disagree after a
 * crash. `rows`: [{metrics, time}].
 */
export async function recordSteps(stage, rows, snapshot, progress) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(['metrics', 'state'], 'readwrite');
    for (const { metrics, time } of rows) tx.objectStore('metrics').add({ stage, metrics, time });
    if (snapshot) tx.objectStore('state').put({ stage, bytes: snapshot, progress, time: Date.now() }, `snapshot:${stage}`);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('storage transaction aborted'));
  });
}

export const putSnapshot = (stage, bytes, progress) => putState(`snapshot:${stage}`, { stage, bytes, progress, time: Date.now() });
export const getSnapshot = (stage) => getState(`snapshot:${stage}`);
export const deleteSnapshot = (stage) => transact('state', 'readwrite', (store) => done(store.delete(`snapshot:${stage}`)));

// What each stage's result feeds: a stage begun afresh makes the snapshots after it stale.
const DOWNSTREAM = { sft: ['sft', 'reward', 'ppo', 'grpo', 'dpo'], reward: ['reward', 'ppo', 'grpo'], ppo: ['ppo'], grpo: ['grpo'], dpo: ['dpo'] };

/** A stage begins afresh: its snapshot and those of the stages built on it are dropped. */
export async function discardSnapshotsFrom(stage) {
  await Promise.all((DOWNSTREAM[stage] ?? [stage]).map(deleteSnapshot));
}

export async function clearAll() {
  await Promise.all(STORES.map((name) => transact(name, 'readwrite', (store) => done(store.clear()))));
}
