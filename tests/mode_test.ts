import assert from "node:assert/strict";
import { Breaker, BreakerOpenError, BreakerRegistry, circuit, statusHandler } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { recordEvents } from "./event_recorder.ts";

const down = new Error("down");

describe("Breaker mode", () => {
  it('Breaker in mode "off" lets every call through and records or announces nothing', async () => {
    const recorded = recordEvents();
    const breaker = new Breaker({
      mode: "off",
      failureThreshold: 1,
      listeners: [recorded.listener],
    });
    for (let i = 0; i < 3; i++) {
      await assert.rejects(breaker.execute(() => Promise.reject(down)), (e) => e === down);
      assert.throws(() =>
        breaker.executeSync(() => {
          throw down;
        }), (e) => e === down);
    }
    breaker.acquire().failure(down);
    await assert.rejects(async () => {
      for await (
        const _ of breaker.stream(async function* () {
          yield 1;
          throw down;
        })
      ) { /* drain */ }
    }, (e) => e === down);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
    assert.deepEqual(recorded.events, []);
  });

  it('Breaker in mode "off" runs calls even while the recorded state is open', async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    breaker.open();
    breaker.configure({ mode: "off" });
    assert.equal(await breaker.execute(() => Promise.resolve("ran")), "ran");
    assert.equal(breaker.executeSync(() => "ran"), "ran");
    breaker.configure({ mode: "enforce" });
    await assert.rejects(breaker.execute(() => Promise.resolve("ran")), BreakerOpenError);
  });

  it('Breaker in mode "observe" trips and announces as if enforcing, but never turns a call away', async () => {
    const recorded = recordEvents();
    const breaker = new Breaker({
      mode: "observe",
      failureThreshold: 2,
      listeners: [recorded.listener],
    });
    const guarded = circuit(() => Promise.reject(down), { breaker });
    await guarded().catch(() => {});
    await guarded().catch(() => {});
    assert.equal(breaker.state, "open");
    let ran = 0;
    assert.equal(await breaker.execute(() => Promise.resolve(++ran)), 1);
    assert.equal(breaker.executeSync(() => ++ran), 2);
    await assert.rejects(guarded(), (e) => e === down, "the wrapper runs too");
    const permit = breaker.acquire();
    permit.success();
    assert.equal(breaker.state, "open", "calls it would have turned away count for nothing");
    assert.deepEqual(recorded.lines(), [
      "beforeCall",
      "failure",
      "beforeCall",
      "failure",
      "stateChange closed->open",
      "rejected open",
      "rejected open",
      "rejected open",
      "rejected open",
    ]);
  });

  it('Breaker in mode "observe" does not serve the fallback', async () => {
    const breaker = new Breaker({ mode: "observe", fallback: () => "fallback" });
    breaker.open();
    assert.equal(await breaker.execute(() => Promise.resolve("live")), "live");
  });

  it("statusHandler() shows each breaker's mode, in the JSON and in the rule's words", async () => {
    const registry = new BreakerRegistry();
    const breaker = new Breaker({ name: "db", mode: "observe", registry });
    const status = statusHandler(registry);
    const report = await (await status(new Request("http://localhost/?format=json"))).json();
    assert.equal(report.breakers[0].mode, "observe");
    assert.match(report.breakers[0].rule, /mode observe: turns no call away/);
    breaker.configure({ mode: "enforce" });
    const after = await (await status(new Request("http://localhost/?format=json"))).json();
    assert.equal(after.breakers[0].mode, "enforce");
  });

  it("Breaker rejects an unknown mode naming it", () => {
    assert.throws(() => new Breaker({ mode: "disabled" as never }), {
      name: "TypeError",
      message:
        `Cannot create breaker: "mode" must be one of "enforce", "observe", "off", received "disabled"`,
    });
  });
});
