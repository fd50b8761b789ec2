// The pure parts of shared circuits that bound what a store holds and what is read from it:
// write marks (the stored value's size) and stored times (hostile or damaged values).
import assert from "node:assert/strict";
import {
  boundStoredTimes,
  CLOCK_SKEW_MS,
  createPolicy,
  INITIAL_SNAPSHOT,
  longestOpenPeriod,
  markWrite,
  MAX_DYNAMIC_PERIOD_MS,
  MAX_WRITE_MARKS,
  MAX_WRITER_LENGTH,
  readWriteMarks,
  sharePolicy,
  type Snapshot,
  WRITE_MARK_TTL_MS,
} from "../src/core/mod.ts";
import { describe, it } from "./timer_leaks.ts";

describe("core write marks: bounded", () => {
  it("markWrite() keeps the newest marks only, however many writers there were", () => {
    const now = 10 * WRITE_MARK_TTL_MS;
    let marks = markWrite(undefined, "w0", 1, now);
    for (let i = 1; i < 1_000; i++) marks = markWrite(marks, `w${i}`, 1, now + i);
    assert.equal(Object.keys(marks).length, MAX_WRITE_MARKS);
    assert.deepEqual(marks["w999"], [1, now + 999]);
    assert.equal(Object.hasOwn(marks, `w${999 - MAX_WRITE_MARKS}`), false, "the oldest dropped");
    assert.ok(JSON.stringify(marks).length < 6_000);
  });

  it("markWrite() prunes marks dated further ahead than WRITE_MARK_TTL_MS, keeps skewed ones", () => {
    const now = 10 * WRITE_MARK_TTL_MS;
    const stored = {
      forged: [1, now + WRITE_MARK_TTL_MS] as const,
      ahead: [2, now + 60_000] as const,
    };
    assert.deepEqual({ ...markWrite(stored, "me", 3, now) }, {
      ahead: [2, now + 60_000],
      me: [3, now],
    });
  });

  it("readWriteMarks() drops writer names longer than MAX_WRITER_LENGTH", () => {
    const long = "x".repeat(MAX_WRITER_LENGTH + 1);
    const fits = "y".repeat(MAX_WRITER_LENGTH);
    assert.deepEqual(
      { ...readWriteMarks({ writes: { [long]: [1, 0], [fits]: [2, 0] } }) },
      { [fits]: [2, 0] },
    );
  });
});

describe("core stored times: bounded", () => {
  const now = 1_000_000;
  const open: Snapshot = {
    ...INITIAL_SNAPSHOT,
    state: "open",
    generation: 1,
    openUntil: 8.64e15,
  };

  it("boundStoredTimes() reads an open period beyond the policy's longest as that longest, saying so", () => {
    const policy = createPolicy({ recoveryTimeout: 1_000, maxRetryAfter: 5_000 });
    const { snapshot, corrections } = boundStoredTimes(policy, open, now);
    assert.equal(snapshot.openUntil, now + 5_000);
    assert.equal(corrections.length, 1);
    assert.match(corrections[0]!, /^"openUntil" 8640000000000000 is \d+ ms ahead/);
  });

  it("boundStoredTimes() leaves times within the bound (plus clock skew) as they are", () => {
    const policy = createPolicy({ recoveryTimeout: 1_000, maxRetryAfter: 5_000 });
    const skewed = { ...open, openUntil: now + 5_000 + CLOCK_SKEW_MS };
    const bounded = boundStoredTimes(policy, skewed, now);
    assert.equal(bounded.snapshot, skewed);
    assert.deepEqual(bounded.corrections, []);
  });

  it("boundStoredTimes() bounds a trial lease by the lease length and a ramp by its duration", () => {
    const policy = sharePolicy(
      createPolicy({ timeout: 2_000, recoveryRamp: { duration: 3_000 } }),
      "me",
    );
    const leased: Snapshot = {
      ...INITIAL_SNAPSHOT,
      state: "half-open",
      generation: 2,
      lease: { holder: "forged", until: 8.64e15 },
    };
    assert.deepEqual(boundStoredTimes(policy, leased, now).snapshot.lease, {
      holder: "forged",
      until: now + 2_000,
    });
    const ramping: Snapshot = {
      ...INITIAL_SNAPSHOT,
      state: "recovering",
      generation: 3,
      rampStart: 8e15,
      rampUntil: 8.64e15,
    };
    const { snapshot } = boundStoredTimes(policy, ramping, now);
    assert.equal(snapshot.rampUntil, now + 3_000);
    assert.equal(snapshot.rampStart, now + 3_000);
  });

  it("longestOpenPeriod() counts a recoveryTimeout function as up to a day, or maxRetryAfter", () => {
    assert.equal(
      longestOpenPeriod(createPolicy({ recoveryTimeout: () => 1 })),
      MAX_DYNAMIC_PERIOD_MS,
    );
    assert.equal(
      longestOpenPeriod(
        createPolicy({ recoveryTimeout: 10, maxRetryAfter: 2 * MAX_DYNAMIC_PERIOD_MS }),
      ),
      2 * MAX_DYNAMIC_PERIOD_MS,
    );
  });
});
