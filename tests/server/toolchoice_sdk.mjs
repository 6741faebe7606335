// toolchoice_sdk.mjs BASE_URL - tool_choice "required" and a named function
// through the official openai package (create, and the stream helper that
// assembles tool-call deltas) and LangChain's withStructuredOutput (which
// names a tool), on the scripted models of test_toolchoice.sh that answer
// with plain text: the grammar must turn every reply into a valid call.
import OpenAI from 'openai';
import { ChatOpenAI } from '@langchain/openai';
import { z } from 'zod';

const [, , base] = process.argv;
let fails = 0;
const check = (desc, cond, extra) => {
  console.log((cond ? 'ok   - ' : 'FAIL - ') + desc + (cond || extra === undefined ? '' : ' :: ' + JSON.stringify(extra)));
  if (!cond) fails++;
};
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } },
    required: ['city', 'unit'], additionalProperties: false } } }];
const messages = [{ role: 'user', content: 'Weather in Paris?' }];
const validArgs = (s) => {
  try {
    const a = JSON.parse(s);
    return typeof a.city === 'string' && [...a.city].length <= 12 && (a.unit === 'c' || a.unit === 'f') &&
      Object.keys(a).every((k) => k === 'city' || k === 'unit');
  } catch { return false; }
};

const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 120000 });
for (const m of ['qwen3', 'llama3', 'mistral', 'tq3']) {
  for (const tool_choice of ['required', { type: 'function', function: { name: 'get_weather' } }]) {
    const what = typeof tool_choice === 'string' ? tool_choice : 'named';
    const r = await client.chat.completions.create({ model: m, messages, tools, tool_choice, temperature: 1, seed: 11,
      max_tokens: 600, parallel_tool_calls: false });
    const c = r.choices[0];
    check(`openai ${m} ${what}: one get_weather call with valid arguments`, c.finish_reason === 'tool_calls' &&
      c.message.tool_calls?.length === 1 && c.message.tool_calls[0].function.name === 'get_weather' &&
      validArgs(c.message.tool_calls[0].function.arguments), c);
  }
  const stream = client.beta.chat.completions.stream({ model: m, messages, tools, tool_choice: 'required',
    temperature: 1, seed: 12, max_tokens: 600, parallel_tool_calls: false });
  const fin = await stream.finalChatCompletion();
  const fc = fin.choices[0];
  check(`openai ${m} stream helper: the assembled call is valid`, fc.message.tool_calls?.length === 1 &&
    validArgs(fc.message.tool_calls[0].function.arguments), fc);
}

// LangChain: withStructuredOutput(..., {method: 'functionCalling'}) names the tool
for (const m of ['qwen3', 'tq3']) {
  const llm = new ChatOpenAI({ model: m, apiKey: 'unused', configuration: { baseURL: base + '/v1' }, temperature: 1,
    maxTokens: 600, maxRetries: 0 });
  const schema = z.object({ city: z.string().max(12), unit: z.enum(['c', 'f']) });
  try {
    const out = await llm.withStructuredOutput(schema, { name: 'weather', method: 'functionCalling' })
      .invoke('Weather in Paris?');
    check(`langchain ${m}: withStructuredOutput(functionCalling) parses`, schema.safeParse(out).success, out);
  } catch (e) {
    check(`langchain ${m}: withStructuredOutput(functionCalling) parses`, false, String(e));
  }
}
process.exit(fails ? 1 : 0);
