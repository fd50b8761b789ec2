/**
 * fast-check parameters for the property tests, replayable from the environment:
 *
 *   FC_SEED=<seed> FC_PATH=<path> ./node_modules/.bin/deno test --allow-all tests/model_test.ts
 *
 * fast-check prints the seed and path of a failing run ("{ seed: ..., path: ... }"); with both
 * set, only that run (and its shrunk counterexample) is played again. FC_RUNS multiplies every
 * property's number of runs (e.g. FC_RUNS=10 for a long soak).
 */

import process from "node:process";

/** `fc.assert` parameters for `numRuns` runs, honouring FC_SEED, FC_PATH and FC_RUNS. */
export function replayable(numRuns: number): {
  numRuns: number;
  seed?: number;
  path?: string;
  endOnFailure?: boolean;
} {
  const seed = process.env.FC_SEED;
  const path = process.env.FC_PATH;
  const factor = Number(process.env.FC_RUNS ?? 1);
  const parameters: ReturnType<typeof replayable> = {
    numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(factor) ? factor : 1))),
  };
  if (seed !== undefined && seed !== "") parameters.seed = Number(seed);
  if (path !== undefined && path !== "") parameters.path = path;
  return parameters;
}
