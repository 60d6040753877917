// Scaffold: the labeling panel is being built (see views/README.md for the controller contract).
import { el } from './common.js';

export async function mountLabeling(root, store) {
  root.append(el('section', { class: 'panel', id: 'labeling' }, el('h2', { text: 'labeling' })));
  const state = 'blocked';
  store.events.emit('stage-state', { stage: 'labeling', state });
  return { name: 'labeling', title: 'labeling', state: () => state, start: async () => {}, pause: () => {}, step: async () => {}, reset: async () => {} };
}
