// Type-level tests: they pass when this file type-checks (`deno check`, and `deno test`,
// which checks before running). Each assertion fails compilation if a type drifts.
import assert from "node:assert/strict";
import { Breaker, circuit, type CircuitOptions } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;
function expectType<T extends true>(_proof?: T): void {}

interface User {
  id: string;
}
const loadUser = (id: string, _verbose?: boolean): Promise<User> => Promise.resolve({ id });
function withThis(this: { base: number }, add: number): Promise<number> {
  return Promise.resolve(this.base + add);
}
const syncParse = (text: string): { ok: boolean } => ({ ok: text === "ok" });

describe("types", () => {
  it("circuit(fn) keeps this, parameters and the awaited return type", () => {
    const guarded = circuit(loadUser);
    expectType<
      Equal<typeof guarded, (this: unknown, id: string, _verbose?: boolean) => Promise<User>>
    >(
      true,
    );
    const bound = circuit(withThis);
    expectType<Equal<ThisParameterType<typeof bound>, { base: number }>>(true);
    expectType<Equal<ReturnType<typeof bound>, Promise<number>>>(true);
    const plain = circuit((x: number) => x * 2);
    expectType<Equal<ReturnType<typeof plain>, Promise<number>>>(true);
    assert.ok(true);
  });

  it("circuit.sync(fn) and wrapSync keep the exact function type", () => {
    const parse = circuit.sync(syncParse);
    expectType<Equal<typeof parse, typeof syncParse>>(true);
    const wrapped = new Breaker().wrapSync(syncParse);
    expectType<Equal<ReturnType<typeof wrapped>, { ok: boolean }>>(true);
    assert.ok(true);
  });

  it("circuit() types the fallback and isFailureResult by the function", () => {
    const options: CircuitOptions<typeof loadUser> = {
      fallback: (id) => ({ id }),
      isFailureResult: (user) => user.id === "",
    };
    circuit(loadUser, options);
    // @ts-expect-error: the fallback must return what the function returns
    circuit(loadUser, { fallback: (id: string) => id.length });
    // @ts-expect-error: wrong parameter type in the fallback
    circuit(loadUser, { fallback: (id: number) => ({ id: String(id) }) });
    assert.ok(true);
  });

  it("circuit() keeps a generator function's yield, return and next() types", () => {
    const chat = circuit(async function* (prompt: string): AsyncGenerator<string, number, string> {
      const reply = yield prompt;
      return reply.length;
    });
    expectType<
      Equal<typeof chat, (this: unknown, prompt: string) => AsyncGenerator<string, number, string>>
    >(
      true,
    );
    const rows = circuit(function* (this: { table: string }): Generator<string, boolean, number> {
      const limit = yield this.table;
      return limit > 0;
    });
    expectType<Equal<ThisParameterType<typeof rows>, { table: string }>>(true);
    expectType<Equal<ReturnType<typeof rows>, Generator<string, boolean, number>>>(true);
    // unannotated, a generator takes any value in next(), and so does its guarded stream
    const plain = circuit(async function* (n: number) {
      yield n;
    });
    expectType<Equal<ReturnType<typeof plain>, AsyncGenerator<number, void, unknown>>>(true);
    const misuse = () => {
      // @ts-expect-error: the generator receives strings
      void chat("hi").next(42);
      // @ts-expect-error: the generator receives numbers
      rows.call({ table: "users" }).next("ten");
    };
    assert.equal(typeof misuse, "function");
  });

  it("Breaker.stream() keeps the source's item, return and next() types", () => {
    const breaker = new Breaker();
    async function* chat(): AsyncGenerator<string, number, string> {
      const reply = yield "hi";
      return reply.length;
    }
    const handed = breaker.stream(chat());
    expectType<Equal<typeof handed, AsyncIterableIterator<string, number, string>>>(true);
    const opened = breaker.stream((_signal) => chat());
    expectType<Equal<typeof opened, AsyncIterableIterator<string, number, string>>>(true);
    const body = breaker.stream(new ReadableStream<Uint8Array>(), {
      isFailureItem: (chunk) => chunk.length === 0,
    });
    expectType<Equal<typeof body, AsyncIterableIterator<Uint8Array>>>(true);
    const misuse = () => {
      // @ts-expect-error: the generator receives strings
      void handed.next(42);
      // @ts-expect-error: the items are numbers
      breaker.stream(chat(), { isFailureItem: (item: number) => item > 0 });
    };
    assert.equal(typeof misuse, "function");
    return handed.return?.().then(() => {});
  });

  it("execute() and wrap() infer results", async () => {
    const breaker = new Breaker();
    const n = await breaker.execute((signal) => Promise.resolve(signal.aborted ? 0 : 1));
    expectType<Equal<typeof n, number>>(true);
    const s = breaker.executeSync(() => "text");
    expectType<Equal<typeof s, string>>(true);
    const wrapped = breaker.wrap(loadUser);
    expectType<Equal<Parameters<typeof wrapped>, [id: string, _verbose?: boolean | undefined]>>(
      true,
    );
    // @ts-expect-error: the wrapper checks its arguments
    await wrapped(42);
    assert.equal(n, 1);
  });
});
