// structured_sdk.mjs - the official openai npm package's structured output
// helpers against the server: client.beta.chat.completions.parse with a zod
// schema (zodResponseFormat, strict), streamed json_schema output parsed and
// validated by zod, on each model given (random weights included: the
// grammar alone must make the output valid).
// usage: node structured_sdk.mjs URL MODEL...
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";

const [url, ...models] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
const Pet = z.object({
  name: z.string().max(12),
  age: z.number().int().min(0).max(30),
  kind: z.enum(["cat", "dog", "fish"]),
  vaccinated: z.boolean(),
  tags: z.array(z.enum(["small", "loud", "old"])).max(3),
  owner: z.object({ id: z.string().uuid(), since: z.string().regex(/^\d{4}-\d{2}$/) }).nullable(),
});
let fails = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} - ${what}`);
  if (!ok) fails++;
};
for (const model of models) {
  for (const seed of [1, 2, 3]) {
    const r = await client.beta.chat.completions.parse({
      model,
      messages: [{ role: "user", content: "Describe a pet as JSON." }],
      response_format: zodResponseFormat(Pet, "pet"),
      max_tokens: 600,
      seed,
      temperature: 1,
    });
    const c = r.choices[0];
    check(c.finish_reason === "stop" && c.message.parsed !== null && Pet.safeParse(c.message.parsed).success,
      `${model} seed ${seed}: parse() gives a valid Pet (${c.message.content.replace(/\s+/g, " ").slice(0, 90)})`);
  }
  // streamed: the chunks joined are a valid Pet
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "A pet, please." }],
    response_format: zodResponseFormat(Pet, "pet"),
    max_tokens: 600,
    seed: 9,
    stream: true,
  });
  let text = "", finish = null, chunks = 0;
  for await (const ch of stream) {
    text += ch.choices[0]?.delta?.content ?? "";
    finish = ch.choices[0]?.finish_reason ?? finish;
    chunks++;
  }
  let parsed = null;
  try { parsed = Pet.parse(JSON.parse(text)); } catch (e) { console.log(`  ${e.message.slice(0, 200)}`); }
  check(finish === "stop" && chunks > 2 && parsed !== null, `${model}: streamed json_schema output is a valid Pet`);
  // a schema the server cannot guarantee is refused with a 400 naming it
  try {
    await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "bad", strict: true,
        schema: { type: "object", properties: { s: { type: "string", pattern: "(a)\\1" } }, required: ["s"] } } },
    });
    check(false, `${model}: unsupported pattern refused`);
  } catch (e) {
    check(e.status === 400 && /backreferences/.test(e.message) && /#\/properties\/s\/pattern/.test(e.message),
      `${model}: unsupported pattern -> 400 naming it (${e.message.slice(0, 120)})`);
  }
}
process.exit(fails ? 1 : 0);
