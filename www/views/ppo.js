// Scaffold: the ppo panel is being built (see views/README.md for the controller contract).
import { el } from './common.js';

export async function mountPpo(root, store) {
  root.append(el('section', { class: 'panel', id: 'ppo' }, el('h2', { text: 'ppo' })));
  const state = 'blocked';
  store.events.emit('stage-state', { stage: 'ppo', state });
  return { name: 'ppo', title: 'ppo', state: () => state, start: async () => {}, pause: () => {}, step: async () => {}, reset: async () => {} };
}
