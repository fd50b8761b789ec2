// A `node --test` reporter that counts tests the way scripts/test.mjs counts them on Deno and
// Bun: per leaf test (each `it`/`test` body once; `describe` blocks and tests with subtests are
// containers). It writes one JSON line at the end:
//
//   {"passed":N,"failed":M,"skipped":K,"containerFailures":C,"failures":["name", ...]}
//
// A container's failure counts when it is not the mere consequence of failing subtests (a
// throwing hook or describe body, a file that cannot be loaded), and so does an error thrown
// after its test ended: Node's own summary and its JUnit reporter leave those out.
//
//   node --test --test-reporter=./scripts/node_count_reporter.mjs \
//     --test-reporter-destination=counts.json tests/*_test.ts
//
// Plain ESM JavaScript, no dependencies.

const LATE_ERROR = /generated asynchronous activity after the test ended/;

// Plain JavaScript, which Node.js loads as a reporter as it is: no types to declare.
// deno-lint-ignore explicit-module-boundary-types
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0, containerFailures: 0, failures: [] };
  // hasChild[n]: an event at nesting n arrived since the last one at nesting n - 1. Tests report
  // after their subtests, so when a test at nesting n reports, hasChild[n + 1] says whether it
  // had any.
  const hasChild = [];
  for await (const event of source) {
    // An error thrown after its test ended (a stray timer or promise) only gets a diagnostic
    // from Node; Deno and Bun fail the run for it, and so does this count.
    if (event.type === "test:diagnostic" && LATE_ERROR.test(event.data.message)) {
      counts.failed++;
      counts.failures.push(event.data.message.split("\n")[0]);
      continue;
    }
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const { name, nesting, details, skip, todo } = event.data;
    const leaf = !hasChild[nesting + 1] && details?.type !== "suite";
    hasChild[nesting + 1] = false;
    hasChild[nesting] = true;
    const failed = event.type === "test:fail";
    if (leaf) {
      if (failed) {
        counts.failed++;
        counts.failures.push(name);
      } else if (skip !== undefined || todo !== undefined) counts.skipped++;
      else counts.passed++;
    } else if (failed && details?.error?.failureType !== "subtestsFailed") {
      counts.containerFailures++;
      counts.failed++;
      counts.failures.push(`${name} (${details?.error?.failureType ?? "failed"})`);
    }
  }
  yield `${JSON.stringify(counts)}\n`;
}
