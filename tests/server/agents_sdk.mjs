// agents_sdk.mjs BASE_URL - tool calls and reasoning of the scripted models
// (agents_models.sh) through the official openai and ollama packages,
// LangChain's ChatOpenAI and the Vercel AI SDK (openai-compatible
// provider), each as an agent program would use them.
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText, tool } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';

const [, , base] = process.argv;
let fails = 0;
const check = (desc, cond, extra) => {
  console.log((cond ? 'ok   - ' : 'FAIL - ') + desc + (cond || extra === undefined ? '' : ' :: ' + JSON.stringify(extra)));
  if (!cond) fails++;
};
const models = { qwen3: 'I should call the tool.', llama3: '', mistral: '', harmony: 'Need the weather.' };
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const messages = [{ role: 'user', content: 'Weather in Paris?' }];
const isParis = (a) => { try { return JSON.parse(typeof a === 'string' ? a : JSON.stringify(a)).city === 'Paris'; } catch { return false; } };

// ---- openai
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
for (const [m, reasoning] of Object.entries(models)) {
  const r = await client.chat.completions.create({ model: m, messages, tools, temperature: 0 });
  const c = r.choices[0];
  check(`openai ${m}: tool_calls, finish tool_calls`, c.finish_reason === 'tool_calls' && c.message.tool_calls?.length === 1 &&
        c.message.tool_calls[0].function.name === 'get_weather' && isParis(c.message.tool_calls[0].function.arguments), c);
  check(`openai ${m}: reasoning_content`, (c.message.reasoning_content ?? '') === reasoning, c.message);
  const s = client.beta.chat.completions.stream({ model: m, messages, tools, temperature: 0 });
  const f = await s.finalChatCompletion();
  const fc = f.choices[0];
  check(`openai ${m}: the SDK assembles the streamed call`, fc.finish_reason === 'tool_calls' && fc.message.tool_calls?.length === 1 &&
        fc.message.tool_calls[0].function.name === 'get_weather' && isParis(fc.message.tool_calls[0].function.arguments) &&
        fc.message.tool_calls[0].id === fc.message.tool_calls[0].id.trim() && fc.message.tool_calls[0].id.length > 0, fc);
  // the next turn: the assistant's call and the tool's answer go back in
  const next = await client.chat.completions.create({ model: m, tools, max_tokens: 4, messages: [...messages, c.message,
    { role: 'tool', tool_call_id: c.message.tool_calls[0].id, content: 'sunny' }] });
  check(`openai ${m}: a follow-up turn with the call and its result is accepted`, next.choices.length === 1);
}

// ---- openai Responses API (POST /v1/responses)
const rtools = [{ type: 'function', name: 'get_weather', description: 'Weather of a city', parameters: tools[0].function.parameters, strict: false }];
for (const [m, reasoning] of Object.entries(models)) {
  const r = await client.responses.create({ model: m, input: 'Weather in Paris?', tools: rtools, temperature: 0 });
  const calls = r.output.filter((o) => o.type === 'function_call');
  const rs = r.output.filter((o) => o.type === 'reasoning').map((o) => o.content?.[0]?.text ?? '').join('');
  check(`responses ${m}: a function_call item`, r.status === 'completed' && calls.length === 1 && calls[0].name === 'get_weather' && isParis(calls[0].arguments) && !!calls[0].call_id, r.output);
  check(`responses ${m}: a reasoning item`, rs === reasoning, r.output);
  const st = client.responses.stream({ model: m, input: 'Weather in Paris?', tools: rtools, temperature: 0 });
  let argsDone = 0;
  st.on('response.function_call_arguments.done', () => argsDone++);
  const f = await st.finalResponse();
  const fcalls = f.output.filter((o) => o.type === 'function_call');
  check(`responses ${m}: streamed events end in the same call`, argsDone === 1 && fcalls.length === 1 && isParis(fcalls[0].arguments), f.output);
  const next = await client.responses.create({ model: m, tools: rtools, max_output_tokens: 4, input: [
    { role: 'user', content: 'Weather in Paris?' }, calls[0], { type: 'function_call_output', call_id: calls[0].call_id, output: 'sunny' }] });
  check(`responses ${m}: the call's output goes back in as input`, ['completed', 'incomplete'].includes(next.status));
}
const plain = await client.responses.create({ model: 'qwen3', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }], instructions: 'Be brief.' });
check('responses: output_text of a reply without tools', typeof plain.output_text === 'string' && plain.output_text.startsWith('<tool_call>'), plain.output_text);

// ---- ollama
const ollama = new Ollama({ host: base });
for (const [m, reasoning] of Object.entries(models)) {
  const r = await ollama.chat({ model: m, messages, tools, stream: false, options: { temperature: 0 } });
  check(`ollama ${m}: message.tool_calls (arguments an object)`, r.message.tool_calls?.length === 1 &&
        r.message.tool_calls[0].function.name === 'get_weather' && r.message.tool_calls[0].function.arguments.city === 'Paris', r.message);
  check(`ollama ${m}: thinking`, (r.message.thinking ?? '') === reasoning, r.message);
  let calls = [], thinking = '';
  for await (const part of await ollama.chat({ model: m, messages, tools, stream: true, options: { temperature: 0 } })) {
    calls.push(...(part.message.tool_calls ?? []));
    thinking += part.message.thinking ?? '';
  }
  check(`ollama ${m}: stream carries the call and the thinking`, calls.length === 1 && calls[0].function.arguments.city === 'Paris' && thinking === reasoning, { calls, thinking });
}
const nothink = await ollama.chat({ model: 'qwen3', messages, think: false, stream: false, options: { num_predict: 1 } });
const think = await ollama.chat({ model: 'qwen3', messages, think: true, stream: false, options: { num_predict: 1 } });
check('ollama think:false renders a longer prompt (the empty think block)', nothink.prompt_eval_count > think.prompt_eval_count, [nothink.prompt_eval_count, think.prompt_eval_count]);

// ---- LangChain
for (const m of Object.keys(models)) {
  const llm = new ChatOpenAI({ model: m, apiKey: 'unused', temperature: 0, maxRetries: 0, configuration: { baseURL: base + '/v1' } });
  const withTools = llm.bindTools(tools);
  const msg = await withTools.invoke('Weather in Paris?');
  check(`langchain ${m}: AIMessage.tool_calls`, msg.tool_calls?.length === 1 && msg.tool_calls[0].name === 'get_weather' && msg.tool_calls[0].args.city === 'Paris', msg.tool_calls);
  let acc;
  for await (const ch of await withTools.stream('Weather in Paris?')) acc = acc ? acc.concat(ch) : ch;
  check(`langchain ${m}: streamed chunks concat to the call`, acc?.tool_calls?.length === 1 && acc.tool_calls[0].name === 'get_weather' && acc.tool_calls[0].args.city === 'Paris', acc?.tool_calls);
}

// ---- Vercel AI SDK
const provider = createOpenAICompatible({ name: 'airlock', baseURL: base + '/v1', apiKey: 'unused' });
const aiTools = { get_weather: tool({ description: 'Weather of a city', inputSchema: z.object({ city: z.string() }) }) };
for (const [m, reasoning] of Object.entries(models)) {
  const r = await generateText({ model: provider(m), tools: aiTools, prompt: 'Weather in Paris?', temperature: 0, maxRetries: 0 });
  check(`ai-sdk ${m}: toolCalls`, r.toolCalls.length === 1 && r.toolCalls[0].toolName === 'get_weather' && r.toolCalls[0].input.city === 'Paris' && r.finishReason === 'tool-calls', { calls: r.toolCalls, finish: r.finishReason });
  check(`ai-sdk ${m}: reasoning`, (r.reasoningText ?? '') === reasoning, r.reasoningText);
  const s = streamText({ model: provider(m), tools: aiTools, prompt: 'Weather in Paris?', temperature: 0, maxRetries: 0 });
  const calls = await s.toolCalls;
  check(`ai-sdk ${m}: streamed toolCalls`, calls.length === 1 && calls[0].input.city === 'Paris', calls);
}

console.log(fails ? `${fails} check(s) failed` : 'all agent SDK checks passed');
process.exit(fails ? 1 : 0);
