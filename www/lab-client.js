// The page's handle on the training worker: promise-returning calls and a stream of events.
export class LabClient {
  constructor() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.listeners = new Set();
    this.nextId = 1;
    this.worker.onmessage = ({ data }) => {
      if (data.id != null && this.pending.has(data.id)) {
        const { resolve, reject } = this.pending.get(data.id);
        this.pending.delete(data.id);
        if (data.ok) resolve(data.result);
        else reject(Object.assign(new Error(data.error.message), { name: data.error.name }));
      } else if (data.event) {
        for (const listener of this.listeners) listener(data);
      }
    };
    this.worker.onerror = (e) => {
      for (const listener of this.listeners) listener({ event: 'crashed', message: e.message || 'the training worker stopped' });
    };
  }

  send(cmd, args) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, cmd, args });
    });
  }

  /** `workers`: how many workers a CPU-backend step is split across (`auto`: one per core but one, for the UI). */
  init(backend, config, workers = 'auto') { return this.send('init', { backend, config, workers }); }
  call(method, ...params) { return this.send('call', { method, params }); }
  /** Loops `lab.step(stage)` `steps` times (null: to the end); events carry `tag`. */
  run(stage, steps = null, tag = null) { return this.send('run', { stage, steps, tag }); }
  pause() { this.worker.postMessage({ cmd: 'pause' }); }
  /** Test hook: destroys the worker's GPUDevice, as a lost GPU would. */
  loseDevice() { return this.send('lose-device'); }
  /** Test hook: the next step split across workers fails in its helpers (it then goes on whole). */
  sabotageShards() { return this.send('sabotage-shards'); }
  /** Test hook: the CPU backend's products go back to the core's own kernel (no FMA module). */
  useCoreMatmul() { return this.send('core-matmul'); }
  /** Slow motion: milliseconds to wait between steps (0 = full speed). */
  speed(delayMs) { this.worker.postMessage({ cmd: 'speed', args: { delayMs } }); }
  on(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }
}
