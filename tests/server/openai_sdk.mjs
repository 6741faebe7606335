// openai_sdk.mjs BASE_URL COMPLETION_MODEL CHAT_MODEL - the official openai
// npm package against the real server: chat (stream and not), completions,
// embeddings (the SDK asks base64 by default), models, errors.
import OpenAI from 'openai';

const [, , base, model, chatModel] = process.argv;
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
let fails = 0;
const check = (desc, cond) => { console.log((cond ? 'ok   - ' : 'FAIL - ') + desc); if (!cond) fails++; };
async function expectError(desc, status, fn) {
  try { await fn(); check(desc + ' (no error thrown)', false); }
  catch (e) { check(`${desc} -> ${status} (got ${e.status}: ${e.message})`, e instanceof OpenAI.APIError && e.status === status && !!e.error); }
}

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
check('models.list has both models', ids.includes(model) && ids.includes(chatModel));
const one = await client.models.retrieve(chatModel);
check('models.retrieve', one.id === chatModel);

const msgs = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say something.' }];
const r = await client.chat.completions.create({ model: chatModel, messages: msgs, max_tokens: 12, temperature: 0 });
check('chat non-stream: content and usage', typeof r.choices[0].message.content === 'string' && r.usage.completion_tokens > 0);
check('chat non-stream: finish_reason', ['stop', 'length'].includes(r.choices[0].finish_reason));

const stream = await client.chat.completions.create({ model: chatModel, messages: msgs, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
let text = '', usage = null, finish = null, nChunks = 0;
for await (const c of stream) {
  nChunks++;
  if (c.choices.length) { text += c.choices[0].delta.content ?? ''; finish = c.choices[0].finish_reason ?? finish; }
  if (c.usage) usage = c.usage;
}
check(`chat stream equals non-stream under greedy (${nChunks} chunks)`, text === r.choices[0].message.content);
check('chat stream: finish_reason and usage', finish === r.choices[0].finish_reason && usage && usage.completion_tokens === r.usage.completion_tokens);

const c = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
check('completions: text', c.choices[0].text.length > 0 && c.usage.completion_tokens === 16);
console.log('     completion:', JSON.stringify(c.choices[0].text));
const cs = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stream: true });
let ctext = '';
for await (const ch of cs) ctext += ch.choices[0]?.text ?? '';
check('completions stream equals non-stream', ctext === c.choices[0].text);

const seeded = async () => (await client.completions.create({ model, prompt: 'The dog', max_tokens: 16, temperature: 0.9, seed: 42 })).choices[0].text;
check('same seed, same sampled text', (await seeded()) === (await seeded()));

const e = await client.embeddings.create({ model, input: ['a cat sat', 'on the mat'] });
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
check('embeddings (base64 default): 2 vectors, unit length', e.data.length === 2 && e.data[0].embedding.length > 0 && Math.abs(norm(e.data[1].embedding) - 1) < 1e-3);
const ef = await client.embeddings.create({ model, input: 'a cat sat', encoding_format: 'float' });
check('embeddings float equals base64', ef.data[0].embedding.every((x, i) => Math.abs(x - e.data[0].embedding[i]) < 1e-6));

await expectError('unknown model', 404, () => client.chat.completions.create({ model: 'no-such-model', messages: msgs }));
await expectError('n = 9', 400, () => client.chat.completions.create({ model: chatModel, messages: msgs, n: 9 }));
const two = await client.chat.completions.create({ model: chatModel, messages: msgs, n: 2, max_tokens: 6, temperature: 0 });
check('n = 2: two equal greedy choices', two.choices.length === 2 && two.choices[1].index === 1 && two.choices[0].message.content === two.choices[1].message.content);
await expectError('empty messages', 400, () => client.chat.completions.create({ model: chatModel, messages: [] }));
await expectError('bad temperature', 400, () => client.chat.completions.create({ model: chatModel, messages: msgs, temperature: 9 }));

const j = await client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'JSON' }], max_tokens: 80, temperature: 1, seed: 3, response_format: { type: 'json_object' } });
const jt = j.choices[0].message.content;
let parsed = false; try { JSON.parse(jt); parsed = true; } catch { /* cut by max_tokens? */ }
check(`json_object: ${JSON.stringify(jt).slice(0, 80)}`, j.choices[0].finish_reason === 'length' ? jt.trimStart().startsWith('{') : parsed);

if (fails) { console.log(`${fails} check(s) failed`); process.exit(1); }
console.log('all checks passed');
