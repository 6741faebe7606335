// concurrency.mjs BASE_URL MODEL N - N simultaneous streaming clients: every
// response completes, and each greedy output equals the same request run
// alone (unbatched).
import OpenAI from 'openai';

const [, , base, model, nArg] = process.argv;
const N = Number(nArg || 16);
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 120000 });
const words = ['Once upon a time', 'The little dog', 'Lily and Tom', 'A big red ball', 'The sun was', 'One day a cat',
  'Sam liked to', 'In the park', 'The bird sang', 'Mom said', 'Ben had a toy', 'The tree was tall', 'It was raining',
  'A fish swam', 'The girl ran', 'They went home'];
const prompt = (i) => words[i % words.length] + (i >= words.length ? ' and then' : '');
const maxTokens = (i) => 12 + (i % 5) * 4; // different lengths: sequences leave at different steps

async function run(i) {
  const s = await client.completions.create({ model, prompt: prompt(i), max_tokens: maxTokens(i), temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null;
  for await (const c of s) {
    if (c.choices.length) { text += c.choices[0].text; finish = c.choices[0].finish_reason ?? finish; }
    if (c.usage) usage = c.usage;
  }
  return { text, finish, n: usage?.completion_tokens };
}

const alone = [];
for (let i = 0; i < N; i++) alone.push(await run(i));
const t0 = Date.now();
const together = await Promise.all(Array.from({ length: N }, (_, i) => run(i)));
const dt = (Date.now() - t0) / 1000;
let fails = 0;
for (let i = 0; i < N; i++) {
  const a = alone[i], b = together[i];
  const same = a.text === b.text && a.finish === b.finish && a.n === b.n;
  if (!b.finish || !same) { fails++; console.log(`FAIL - client ${i}: alone ${JSON.stringify(a)} batched ${JSON.stringify(b)}`); }
}
console.log(`${N} concurrent streams finished in ${dt.toFixed(2)} s; ${N - fails}/${N} equal to their unbatched output`);
if (fails) process.exit(1);
console.log('all checks passed');
