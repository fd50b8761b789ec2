/**
 * Drops the promise a guard of `failure_refs.ts` returns for a failing call, then lets the
 * runtime notice: a runtime that reports the unhandled rejection exits non-zero.
 *
 *   <runtime> bench/failure_refs_drop.ts keepRejection|observe
 */

import process from "node:process";
import { keepRejection, observe } from "./failure_refs.ts";

const guard = process.argv[2] === "observe" ? observe : keepRejection;
void guard(() => Promise.reject(new Error("dropped rejection")));
await new Promise((resolve) => setTimeout(resolve, 50));
console.log("nothing reported");
