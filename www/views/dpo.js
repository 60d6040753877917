// Scaffold: the dpo panel is being built (see views/README.md for the controller contract).
import { el } from './common.js';

export async function mountDpo(root, store) {
  root.append(el('section', { class: 'panel', id: 'dpo' }, el('h2', { text: 'dpo' })));
  const state = 'blocked';
  store.events.emit('stage-state', { stage: 'dpo', state });
  return { name: 'dpo', title: 'dpo', state: () => state, start: async () => {}, pause: () => {}, step: async () => {}, reset: async () => {} };
}
