// denoKvStore on a real Deno KV file (in a temporary directory), through several Deno.Kv handles
// on the same file. Under Deno the contract (store_contract.ts) runs in this process; under Bun,
// which has no Deno KV, a Deno child process runs it (deno_kv_contract.ts) and each check is
// one test here, failing when the child did not report it as passed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { type DenoKv, type DenoKvEntryMaybe, denoKvStore } from "../src/deno_kv_store.ts";
import { type CheckReport, runKvCheck, temporaryKvPath } from "./deno_kv_contract.ts";
import { PROBE_DONE, spawnProbe, spawnSanitizerProbe } from "./leak_probe.ts";
import { recorder, storeContract, uniqueName, waitFor, writeUntilSeen } from "./store_contract.ts";
import { describe, it } from "./timer_leaks.ts";

const hasDenoKv = typeof Deno !== "undefined" && typeof Deno.openKv === "function";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Deno from npm (node_modules/.bin), for the child processes run from Bun. */
const DENO = hasDenoKv ? Deno.execPath() : `${ROOT}node_modules/.bin/deno`;

/** A KV database that records the calls made to it and answers from a map. */
function fakeKv(): DenoKv & { readonly calls: string[] } {
  const calls: string[] = [];
  const entries = new Map<string, DenoKvEntryMaybe>();
  let stamp = 0;
  return {
    calls,
    get(key) {
      calls.push(`get ${JSON.stringify(key)}`);
      return Promise.resolve(
        entries.get(JSON.stringify(key)) ?? { value: null, versionstamp: null },
      );
    },
    atomic() {
      const checks: { key: string; versionstamp: string | null }[] = [];
      const sets: [string, unknown][] = [];
      const operation = {
        check(...items: { key: readonly unknown[]; versionstamp: string | null }[]) {
          for (const item of items) {
            checks.push({ key: JSON.stringify(item.key), versionstamp: item.versionstamp });
          }
          return operation;
        },
        set(key: readonly unknown[], value: unknown) {
          sets.push([JSON.stringify(key), value]);
          return operation;
        },
        commit() {
          calls.push(`commit ${JSON.stringify({ checks, sets })}`);
          const ok = checks.every((c) =>
            (entries.get(c.key)?.versionstamp ?? null) === c.versionstamp
          );
          if (!ok) return Promise.resolve({ ok: false });
          const versionstamp = String(++stamp).padStart(20, "0");
          for (const [key, value] of sets) entries.set(key, { value, versionstamp });
          return Promise.resolve({ ok: true, versionstamp });
        },
      };
      return operation;
    },
  };
}

describe("denoKvStore", () => {
  if (hasDenoKv) {
    describe("on a Deno KV file, in this process", () => {
      for (const check of storeContract) it(check.name, () => runKvCheck(check.run));

      it("keeps a name at [...prefix, name]: the value is the JSON, the version its versionstamp", async () => {
        const file = temporaryKvPath();
        const kv = await Deno.openKv(file.path);
        try {
          const store = denoKvStore(kv, { prefix: ["app", 1, "circuit"] });
          const stored = await store.compareAndSet("db", undefined, '{"state":"open"}');
          assert.ok(stored);
          const entry = await kv.get(["app", 1, "circuit", "db"]);
          assert.deepEqual(
            { value: entry.value, versionstamp: entry.versionstamp },
            { value: '{"state":"open"}', versionstamp: stored.version },
          );
          await denoKvStore(kv).compareAndSet("db", undefined, "{}");
          assert.equal(
            (await kv.get(["circuit", "db"])).value,
            "{}",
            'the default prefix is ["circuit"]',
          );
        } finally {
          kv.close();
          file.remove();
        }
      });

      it("rejects a read of a value that is not a string, naming its versionstamp, and announces nothing for it", async () => {
        const file = temporaryKvPath();
        const kv = await Deno.openKv(file.path);
        try {
          const { versionstamp } = await kv.set(["circuit", "db"], 42);
          await assert.rejects(denoKvStore(kv).read("db"), {
            name: "TypeError",
            message:
              'Deno KV store: the value at ["circuit", "db"] must be a string (a snapshot\'s JSON), received 42',
            storedVersion: versionstamp,
          });
          const seen = recorder();
          const subscription = denoKvStore(kv).subscribe!("db", seen.onChange, seen.onError);
          try {
            // The watch's first notification is the current entry: a string one is announced.
            await kv.set(["circuit", "db"], "{}");
            await waitFor(() => seen.changes.length > 0, "the string value announced");
            assert.deepEqual(seen.changes.map((change) => change.value), ["{}"]);
            assert.deepEqual(seen.errors, []);
          } finally {
            await subscription[Symbol.asyncDispose]();
          }
        } finally {
          kv.close();
          file.remove();
        }
      });

      it("reports a watch that ends because the database was closed", async () => {
        const file = temporaryKvPath();
        const kv = await Deno.openKv(file.path);
        const writer = await Deno.openKv(file.path);
        try {
          const seen = recorder();
          const subscription = denoKvStore(kv).subscribe!("db", seen.onChange, seen.onError);
          try {
            await writeUntilSeen(denoKvStore(writer), "db", seen, undefined);
            kv.close();
            await waitFor(() => seen.errors.length > 0, "onError after the close");
          } finally {
            await subscription[Symbol.asyncDispose]();
          }
        } finally {
          writer.close();
          file.remove();
        }
      });
    });
  } else {
    describe("on a Deno KV file, in a Deno child process", () => {
      let reports: CheckReport[] = [];
      let failure = "";
      before(async () => {
        const script = fileURLToPath(new URL("./deno_kv_contract.ts", import.meta.url));
        await new Promise<void>((resolve) => {
          execFile(
            DENO,
            ["run", "--allow-all", "--unstable-kv", script],
            { cwd: ROOT, timeout: 120_000, env: { ...process.env, NO_COLOR: "1" } },
            (error, stdout, stderr) => {
              reports = stdout.split("\n").filter((line) => line.startsWith("{")).map((line) =>
                JSON.parse(line) as CheckReport
              );
              if (error) failure = `${error.message}\n${stderr}`;
              resolve();
            },
          );
        });
      });
      after(() => {
        reports = [];
      });
      for (const check of storeContract) {
        it(check.name, () => {
          const report = reports.find((r) => r.check === check.name);
          assert.ok(
            report,
            `the Deno child did not report this check${failure ? `: ${failure}` : ""}`,
          );
          assert.ok(report.ok, report.error ?? "failed in the Deno child");
        });
      }
    });
  }

  describe("leaves nothing open (Deno child processes, from either runtime)", () => {
    it("a process using the store exits by itself once it disposed and closed", async () => {
      const file = temporaryKvPath();
      try {
        const result = await spawnProbe(
          [DENO, "run", "--allow-all", "--unstable-kv"],
          ["kv", file.path],
          20_000,
        );
        assert.ok(result.exited, `the probe did not exit within 20 s:\n${result.output}`);
        assert.equal(result.code, 0, result.output);
        assert.ok(result.output.includes(PROBE_DONE), result.output);
      } finally {
        file.remove();
      }
    });

    it("Deno's sanitizers find no watch left after disposal (deno test)", async () => {
      const file = temporaryKvPath();
      try {
        const result = await spawnSanitizerProbe(DENO, ["kv", file.path], 30_000);
        assert.ok(result.exited, `deno test did not end within 30 s:\n${result.output}`);
        assert.equal(result.code, 0, result.output);
        assert.match(result.output, /ok \| 2 passed \| 0 failed/, result.output);
      } finally {
        file.remove();
      }
    });
  });

  describe("with a structural KV", () => {
    it("compares and sets with check({ key, versionstamp }) and set(key, value)", async () => {
      const kv = fakeKv();
      const store = denoKvStore(kv, { prefix: ["p"] });
      const name = uniqueName("fake");
      const stored = await store.compareAndSet(name, undefined, "{}");
      assert.ok(stored);
      assert.equal(await store.compareAndSet(name, undefined, "{}"), undefined);
      assert.deepEqual(await store.read(name), stored);
      assert.equal(
        kv.calls[0],
        `commit ${
          JSON.stringify({
            checks: [{ key: JSON.stringify(["p", name]), versionstamp: null }],
            sets: [[JSON.stringify(["p", name]), "{}"]],
          })
        }`,
      );
    });

    it("has no subscribe() when the database has no watch()", () => {
      assert.equal(denoKvStore(fakeKv()).subscribe, undefined);
    });

    it("has no subscribe() for a database that is not Deno's own (the npm client on Bun and Node.js), though it has watch()", () => {
      // @deno/kv's watch() keeps a Bun or Node.js process alive after it is cancelled and the
      // database closed: breakers read at each sync instead.
      const kv = { ...fakeKv(), watch: () => new ReadableStream<readonly DenoKvEntryMaybe[]>() };
      assert.equal(denoKvStore(kv).subscribe, undefined);
      assert.equal(typeof denoKvStore(kv).read, "function");
    });

    it("copies the prefix: changing the array later moves nothing", async () => {
      const kv = fakeKv();
      const prefix = ["a"];
      const store = denoKvStore(kv, { prefix });
      prefix.push("b");
      await store.read("db");
      assert.deepEqual(kv.calls, ['get ["a","db"]']);
    });
  });

  describe("arguments", () => {
    const kvMessage =
      'Cannot create Deno KV store: "kv" must be a Deno KV database (from Deno.openKv() or @deno/kv), received';

    it("rejects what is not a KV database, saying what it received", () => {
      for (
        const [kv, received] of [
          [42, "42"],
          [null, "null"],
          [undefined, "undefined"],
          [{}, "an object"],
          [{ get() {} }, "an object"],
        ] as const
      ) {
        assert.throws(() => denoKvStore(kv as unknown as DenoKv), {
          name: "TypeError",
          message: `${kvMessage} ${received}`,
        });
      }
    });

    it("rejects a prefix that is not an array of key parts, and options that are not an object", () => {
      const prefixMessage =
        'Cannot create Deno KV store: "prefix" must be an array of key parts (strings, numbers, bigints, booleans or Uint8Arrays), received';
      for (
        const [prefix, received] of [
          ["circuit", '"circuit"'],
          [[{}], "an array of 1"],
          [[Symbol("s")], "an array of 1"],
          [null, "null"],
        ] as const
      ) {
        assert.throws(() => denoKvStore(fakeKv(), { prefix: prefix as never }), {
          name: "TypeError",
          message: `${prefixMessage} ${received}`,
        });
      }
      assert.throws(() => denoKvStore(fakeKv(), 7 as never), {
        message: 'Cannot create Deno KV store: "options" must be an object, received 7',
      });
      denoKvStore(fakeKv(), { prefix: ["s", 1, 2n, true, new Uint8Array([1])] });
      denoKvStore(fakeKv(), { prefix: [] });
    });
  });
});
