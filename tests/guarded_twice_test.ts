import assert from "node:assert/strict";
import { Breaker, BreakerOpenError, circuit } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { manualClock } from "./manual_clock.ts";

const down = new Error("down");
const failing = () => Promise.reject(down);

describe("Breaker entry points given a function this breaker already guards", () => {
  it("Breaker.execute() counts a wrap()ped function's failure once", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    const guarded = breaker.wrap(failing);
    await assert.rejects(breaker.execute(guarded), (error) => error === down);
    assert.equal(breaker.failureCount, 1);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.execute() lets a wrap()ped function's trial close a half-open circuit", async () => {
    const clock = manualClock();
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 1_000, clock });
    let healthy = false;
    const guarded = breaker.wrap(() => healthy ? Promise.resolve("ok") : Promise.reject(down));
    await assert.rejects(breaker.execute(guarded), (error) => error === down);
    assert.equal(breaker.state, "open");
    clock.advance(1_000);
    healthy = true;
    assert.equal(await breaker.execute(guarded), "ok");
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.execute() rejects with the inner guard's BreakerOpenError, counting nothing", async () => {
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 60_000 });
    const guarded = circuit(failing, { breaker });
    await assert.rejects(breaker.execute(guarded), (error) => error === down);
    const before = breaker.snapshot;
    await assert.rejects(breaker.execute(guarded), BreakerOpenError);
    assert.equal(breaker.snapshot, before);
  });

  it("Breaker.execute() does not run a guarded function when the caller's signal is aborted", async () => {
    const breaker = new Breaker();
    let calls = 0;
    const guarded = breaker.wrap(() => Promise.resolve(++calls));
    const reason = new Error("gone");
    await assert.rejects(
      breaker.execute(guarded, { signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
    assert.equal(calls, 0);
  });

  it("Breaker.executeSync() counts a wrapSync()ped function's failure once", () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    const guarded = breaker.wrapSync(() => {
      throw down;
    });
    assert.throws(() => breaker.executeSync(guarded), (error) => error === down);
    assert.equal(breaker.failureCount, 1);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.executeSync() lets a wrapSync()ped function's trial close a half-open circuit", () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const guarded = breaker.wrapSync(() => "ok");
    breaker.halfOpen();
    assert.equal(breaker.executeSync(guarded), "ok");
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.stream() runs a guarded generator's own guard alone", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    const tokens = circuit(async function* tokens() {
      yield "a";
      throw down;
    }, { breaker });
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const token of breaker.stream(tokens())) seen.push(token);
    }, (error) => error === down);
    assert.deepEqual(seen, ["a"]);
    assert.equal(breaker.failureCount, 1);

    breaker.halfOpen();
    const ok = circuit(async function* ok() {
      yield 1;
    }, { breaker });
    for await (const _ of breaker.stream(ok())) { /* drain */ }
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.stream() refuses options for a stream its guard already decides", () => {
    const breaker = new Breaker({ name: "llm" });
    const tokens = circuit(async function* () {
      yield 1;
    }, { breaker });
    assert.throws(() => breaker.stream(tokens(), { idleTimeout: 1_000 }), {
      name: "TypeError",
      message:
        `Cannot guard stream: "source" is already guarded by circuit "llm", whose guard decides; "options" cannot be given`,
    });
  });

  it("Breaker entry points count a function guarded by another breaker in both (a nested call)", async () => {
    const inner = new Breaker({ failureThreshold: 5 });
    const outer = new Breaker({ failureThreshold: 5 });
    const guarded = inner.wrap(failing);
    await assert.rejects(outer.execute(guarded), (error) => error === down);
    assert.equal(inner.failureCount, 1);
    assert.equal(outer.failureCount, 1);
  });
});
