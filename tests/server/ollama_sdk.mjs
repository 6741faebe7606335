// ollama_sdk.mjs BASE_URL COMPLETION_MODEL CHAT_MODEL - the ollama npm
// package against the real server.
import { Ollama } from 'ollama';

const [, , base, model, chatModel] = process.argv;
const ollama = new Ollama({ host: base });
let fails = 0;
const check = (desc, cond) => { console.log((cond ? 'ok   - ' : 'FAIL - ') + desc); if (!cond) fails++; };

const list = await ollama.list();
check('list', list.models.map((m) => m.name).includes(chatModel));
const v = await (await fetch(base + '/api/version')).json();
check('version', typeof v.version === 'string');

const messages = [{ role: 'user', content: 'Hello!' }];
const r = await ollama.chat({ model: chatModel, messages, options: { temperature: 0, num_predict: 10 } });
check('chat non-stream', r.done === true && r.message.role === 'assistant' && r.eval_count === 10);
let text = '';
let last = null;
for await (const part of await ollama.chat({ model: chatModel, messages, stream: true, options: { temperature: 0, num_predict: 10 } })) {
  text += part.message.content;
  last = part;
}
check('chat stream equals non-stream (greedy)', text === r.message.content && last.done && last.done_reason === 'length');

const g = await ollama.generate({ model, prompt: 'Once upon a time', options: { temperature: 0, num_predict: 12 } });
check('generate', g.done && g.response.length > 0 && g.eval_count === 12);
let gt = '';
for await (const part of await ollama.generate({ model, prompt: 'Once upon a time', stream: true, options: { temperature: 0, num_predict: 12 } })) gt += part.response;
check('generate stream equals non-stream', gt === g.response);

const j = await ollama.generate({ model: chatModel, prompt: 'give json', format: 'json', options: { temperature: 0.8, seed: 5, num_predict: 60 } });
let ok = false; try { JSON.parse(j.response); ok = true; } catch { ok = j.done_reason === 'length' && j.response.trimStart().startsWith('{'); }
check(`format json: ${JSON.stringify(j.response).slice(0, 60)}`, ok);

const s = await ollama.show({ model: chatModel });
check('show', s.details.family === 'qwen2' && s.template.length > 0);
const e = await ollama.embed({ model, input: ['one', 'two'] });
check('embed', e.embeddings.length === 2 && e.embeddings[0].length > 0);
const ps = await ollama.ps();
check('ps', ps.models.length >= 1);
try { await ollama.chat({ model: 'nope', messages }); check('unknown model throws', false); }
catch (err) { check(`unknown model -> ${err.status_code}: ${err.error}`, err.status_code === 404); }

if (fails) { console.log(`${fails} check(s) failed`); process.exit(1); }
console.log('all checks passed');
