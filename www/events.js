// A tiny event bus for the page: stages announce what they produced ('stage-state'), the
// pipeline and other panels listen. Views never import each other; they meet here.
export class Events {
  constructor() { this.handlers = new Map(); }
  on(name, handler) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(handler);
    return () => this.handlers.get(name).delete(handler);
  }
  emit(name, detail) {
    for (const handler of this.handlers.get(name) ?? []) {
      try { handler(detail); } catch (e) { console.error(e); }
    }
  }
}
