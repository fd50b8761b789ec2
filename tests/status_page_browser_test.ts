// The status page in a real headless Chromium (Debian's `chromium`, driven by playwright-core),
// served over HTTP on 127.0.0.1 by Deno.serve or Bun.serve. Without /usr/bin/chromium the
// tests are skipped saying why, except in CI (`CI=true`), where they fail (service_tests.ts).
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import * as nodeTest from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import type { Breaker } from "../src/breaker.ts";
import { BreakerMetrics } from "../src/breaker_metrics.ts";
import { BreakerRegistry } from "../src/registry.ts";
import { statusHandler, type StatusHandlerOptions } from "../src/status_handler.ts";
import { type LocalServer, serveLocally } from "./local_server.ts";
import { manualClock } from "./manual_clock.ts";
import { type TestDeclaration, testsNeeding } from "./service_tests.ts";
import { describe } from "./timer_leaks.ts";

const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));
const PREFIX = "/admin/circuits/";
const SCRIPT_NAME = "<script>alert(1)</script>";
/** The cookie of an admin's session, which the tests' `authorize` asks for. */
const ADMIN_COOKIE = "session=admin";
/** The longest a test waits for the page to change. */
const WAIT_MS = 5_000;

/** Hue ranges (degrees) of each state's badge colour: the colours, not their exact shades. */
const HUES: Record<string, readonly [number, number]> = {
  closed: [90, 160],
  open: [340, 375],
  "half-open": [30, 60],
  recovering: [190, 230],
  isolated: [250, 290],
};

/** The hue of a CSS `rgb(r, g, b)` colour, in [15, 375) so that reds form one range. */
function hueOf(color: string): number {
  const match = /^rgba?\((\d+), (\d+), (\d+)/.exec(color);
  assert.ok(match, `not an rgb() colour: ${color}`);
  const [r, g, b] = match.slice(1, 4).map((part) => Number(part) / 255) as [number, number, number];
  const max = Math.max(r, g, b);
  const delta = max - Math.min(r, g, b);
  assert.ok(delta > 0.2, `${color} is grey, not a colour`);
  let hue = max === r
    ? ((g - b) / delta) % 6
    : max === g
    ? (b - r) / delta + 2
    : (r - g) / delta + 4;
  hue *= 60;
  if (hue < 15) hue += 360;
  return hue;
}

/** What the functions run in the page use of the DOM, whose types this file does not load. */
interface PageWindow {
  readonly document: {
    querySelectorAll(selector: string): Iterable<{ readonly dataset: Record<string, string> }>;
  };
  getComputedStyle(element: unknown): { readonly backgroundColor: string };
}

interface Scene {
  readonly registry: BreakerRegistry;
  readonly breaker: (name: string, options?: Record<string, unknown>) => Breaker;
  readonly url: string;
  readonly page: Page;
  /** Handler answers, by method and status, for checking what the page sent. */
  readonly answers: string[];
  /** Lets the console report refused requests with this status (a test expects them). */
  readonly expectRefusals: (status: number) => void;
}

/**
 * Runs `body` with a fresh registry served under {@linkcode PREFIX} with `options`, and a new
 * page in its own browser context; closes both afterwards.
 */
async function withStatusPage(
  browser: () => Browser,
  options: StatusHandlerOptions | ((registry: BreakerRegistry) => StatusHandlerOptions),
  body: (scene: Scene) => Promise<void>,
): Promise<void> {
  const registry = new BreakerRegistry();
  const clock = manualClock();
  const status = statusHandler(
    registry,
    typeof options === "function" ? options(registry) : options,
  );
  const answers: string[] = [];
  const server: LocalServer = await serveLocally(async (request) => {
    const { pathname } = new URL(request.url);
    // Chromium asks for one after a navigation, at times: answered, so it logs no 404.
    if (pathname === "/favicon.ico") return new Response(null, { status: 204 });
    if (pathname !== PREFIX) return new Response("not found", { status: 404 });
    const response = await status(request);
    answers.push(`${request.method} ${response.status}`);
    return response;
  });
  let context: BrowserContext | undefined;
  try {
    context = await browser().newContext();
    const page = await context.newPage();
    const consoleProblems: string[] = [];
    const expected = new Set<number>();
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") {
        consoleProblems.push(`${message.type()}: ${message.text()}`);
      }
    });
    page.on("pageerror", (error) => consoleProblems.push(`pageerror: ${error.message}`));
    await body({
      registry,
      breaker: (name, breakerOptions = {}) => registry.breaker(name, { clock, ...breakerOptions }),
      url: `${server.origin}${PREFIX}`,
      page,
      answers,
      expectRefusals: (status) => expected.add(status),
    });
    // Every test: the page logged no error, no CSP violation, across all its refreshes.
    const refusal = /the server responded with a status of (\d+)/;
    assert.deepEqual(
      consoleProblems.filter((problem) => !expected.has(Number(refusal.exec(problem)?.[1]))),
      [],
    );
  } finally {
    await context?.close();
    await server.close();
  }
}

/** The state a row of the page shows for `name`, waiting until it reads `state`. */
async function waitForState(page: Page, name: string, state: string): Promise<void> {
  await page.waitForFunction(
    ([name, state]) =>
      [...(globalThis as unknown as PageWindow).document.querySelectorAll("tr.breaker")].some((
        row,
      ) => row.dataset.name === name && row.dataset.state === state),
    [name, state] as const,
    { timeout: WAIT_MS, polling: 50 },
  );
}

/**
 * Declares a group of tests around one headless Chromium, launched before them and closed after
 * them; the tests are declared with the `it` given to `body` (skipped without Chromium).
 */
function describeWithChromium(
  name: string,
  body: (browser: () => Browser, it: TestDeclaration) => void,
): void {
  const tests = testsNeeding("chromium");
  describe(name, () => {
    let browser: Browser | undefined;
    const executablePath = tests.executable;
    if (executablePath !== undefined) {
      nodeTest.before(async () => {
        browser = await chromium.launch({ executablePath, headless: true });
      });
      nodeTest.after(async () => {
        await browser?.close();
      });
    }
    body(() => {
      if (browser === undefined) throw new Error("chromium did not start");
      return browser;
    }, tests.it);
  });
}

describeWithChromium("status page in Chromium", (browser, it) => {
  it("shows every state in its colour, a <script> name as text, and saves a screenshot", async () => {
    await withStatusPage(browser, {}, async ({ breaker, url, page }) => {
      const dialogs: string[] = [];
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      const db = breaker("db", { failureRate: 0.5, minimumCalls: 10, window: { calls: 10 } });
      db.executeSync(() => "ok");
      assert.throws(() =>
        db.executeSync(() => {
          throw new Error("connection reset");
        })
      );
      breaker("cache", { recoveryTimeout: 30_000 }).open();
      breaker("search").halfOpen();
      const ramp = breaker("ramp", { recoveryRamp: { duration: 60_000 } });
      ramp.halfOpen();
      ramp.executeSync(() => "ok");
      const payments = breaker("payments");
      using _hold = payments.isolate();
      const scripted = breaker(SCRIPT_NAME, { failureThreshold: 1 });
      assert.throws(() =>
        scripted.executeSync(() => {
          throw new Error('<img src=x onerror="alert(2)">');
        })
      );

      const response = await page.goto(url);
      assert.equal(response?.status(), 200);
      assert.equal(response?.headers()["content-type"], "text/html; charset=utf-8");

      const rows = await page.$$eval("tr.breaker", (elements) =>
        elements.map((row) => {
          const badge = row.querySelector(".state")!;
          return {
            name: row.querySelector(".name")!.textContent,
            state: badge.textContent,
            background:
              (globalThis as unknown as PageWindow).getComputedStyle(badge).backgroundColor,
            failures: row.querySelector(".failures")!.textContent,
            window: row.querySelector(".window")!.textContent,
            retry: row.querySelector(".retry")!.textContent,
            failure: row.querySelector(".failure")!.textContent,
          };
        }));
      // Breakers that turn calls away come first, in registry order within a state.
      assert.deepEqual(
        rows.map(({ name, state }) => [name, state]),
        [
          ["payments", "isolated"],
          ["cache", "open"],
          [SCRIPT_NAME, "open"],
          ["search", "half-open"],
          ["ramp", "recovering"],
          ["db", "closed"],
        ],
      );
      for (const row of rows) {
        const [low, high] = HUES[row.state ?? ""]!;
        const hue = hueOf(row.background);
        assert.ok(low <= hue && hue <= high, `${row.state}: ${row.background} (hue ${hue})`);
      }
      assert.deepEqual(rows[5], {
        name: "db",
        state: "closed",
        background: rows[5]?.background,
        failures: "1",
        window: "1 / 2 (50.0 %)",
        retry: "—",
        failure: "Error: connection reset",
      });
      assert.equal(rows[1]?.retry, "30.0 s");
      assert.equal(rows[0]?.retry, "until released");
      assert.equal(rows[4]?.retry, "10 % admitted");
      assert.equal(rows[2]?.failure, 'Error: <img src=x onerror="alert(2)">');

      // The hostile strings are text: no element of theirs exists, and nothing ran.
      assert.equal(await page.locator("main script, main img, main b").count(), 0);
      assert.deepEqual(dialogs, []);
      assert.equal(await page.title(), "Circuit breakers");

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}status_page.png`, fullPage: true });
      assert.ok(existsSync(`${ARTIFACTS}status_page.png`));
    });
  });

  it("refreshes by itself when a breaker changes state", async () => {
    await withStatusPage(browser, { refreshInterval: 200 }, async ({ breaker, url, page }) => {
      const db = breaker("db");
      await page.goto(url);
      await waitForState(page, "db", "closed");
      db.open();
      await waitForState(page, "db", "open");
      breaker("late");
      await waitForState(page, "late", "closed");
      assert.match(await page.locator("#refresh-status").innerText(), /^Updated /);
    });
  });

  it("runs isolate and release from the page's buttons when authorize allows", async () => {
    const options: StatusHandlerOptions = {
      authorize: (request) => request.headers.get("cookie") === ADMIN_COOKIE,
      refreshInterval: 10_000,
    };
    await withStatusPage(browser, options, async ({ breaker, url, page, answers }) => {
      const db = breaker("db");
      await page.context().addCookies([{ name: "session", value: "admin", url }]);
      await page.goto(url);
      await page.click('button[data-action="isolate"][data-name="db"]');
      await waitForState(page, "db", "isolated");
      assert.equal(db.state, "isolated");
      await page.click('button[data-action="release"][data-name="db"]');
      await waitForState(page, "db", "closed");
      assert.equal(db.state, "closed");
      assert.deepEqual(answers.filter((answer) => answer.startsWith("POST")), [
        "POST 200",
        "POST 200",
      ]);
    });
  });

  it("shows no buttons without authorize, and refuses a forged POST with 403", async () => {
    await withStatusPage(browser, {}, async ({ breaker, url, page, expectRefusals }) => {
      const db = breaker("db");
      await page.goto(url);
      assert.equal(await page.locator("button").count(), 0);
      const forged = await page.evaluate(async (target) => {
        const response = await fetch(target, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ action: "isolate", name: "db" }),
        });
        return { status: response.status, text: await response.text() };
      }, url);
      assert.equal(forged.status, 403);
      assert.match(forged.text, /Actions are disabled/);
      assert.equal(db.state, "closed");
      expectRefusals(403);
    });
  });

  it("refuses an action a form on another site posts, even when authorize allows all", async () => {
    await withStatusPage(
      browser,
      { authorize: () => true },
      async ({ breaker, url, page, answers, expectRefusals }) => {
        const db = breaker("db");
        // A text/plain form can smuggle a JSON-looking body, but not a JSON content type.
        const attacker = await serveLocally(() =>
          new Response(
            `<!DOCTYPE html><form method="post" enctype="text/plain" action="${url}">` +
              `<input name='{"action":"isolate","name":"db","x":"' value='"}'></form>` +
              `<script>document.forms[0].submit()</script>`,
            { headers: { "content-type": "text/html" } },
          )
        );
        try {
          const landed = page.waitForResponse((response) => response.url() === url, {
            timeout: WAIT_MS,
          });
          await page.goto(attacker.origin);
          const response = await landed;
          assert.equal(response.status(), 403);
          assert.match(await response.text(), /Cross-site action refused/);
          assert.equal(db.state, "closed");
          assert.deepEqual(answers, ["POST 403"]);
          expectRefusals(403);
        } finally {
          await attacker.close();
        }
      },
    );
  });

  it("puts an incident first: open and isolated breakers, since when, why, and a filter", async () => {
    let metrics: BreakerMetrics | undefined;
    const options = (registry: BreakerRegistry): StatusHandlerOptions => {
      metrics = new BreakerMetrics(registry);
      return {
        metrics,
        authorize: (request) => request.headers.get("cookie") === ADMIN_COOKIE,
        refreshInterval: 200,
      };
    };
    await withStatusPage(browser, options, async ({ breaker, url, page }) => {
      try {
        for (let i = 0; i < 5; i++) breaker(`service-${i}`).executeSync(() => "ok");
        const db = breaker("db", { failureThreshold: 2 });
        for (const message of ["ECONNREFUSED 10.0.3.7:5432", "ECONNREFUSED 10.0.3.7:5432"]) {
          assert.throws(() =>
            db.executeSync(() => {
              throw new Error(message);
            })
          );
        }
        await page.context().addCookies([{ name: "session", value: "admin", url }]);
        await page.goto(url);
        const firstRow = page.locator("tr.breaker").first();
        assert.equal(await firstRow.getAttribute("data-name"), "db");
        assert.match(await firstRow.locator(".state-cell").innerText(), /open\s+since \d{4}-/);
        assert.match(
          await firstRow.locator(".rule").innerText(),
          /opens on 2 consecutive failures/,
        );
        await firstRow.locator("details summary").click();
        await page.waitForTimeout(500); // refreshes keep the history open
        assert.match(
          await firstRow.locator(".history li").first().innerText(),
          /closed → open: 2 consecutive failures; last: Error: ECONNREFUSED 10\.0\.3\.7:5432/,
        );
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: `${ARTIFACTS}status_page_open.png`, fullPage: true });

        // Isolated from the page: the feedback shows next to the button, and stays on refresh.
        await page.click('button[data-action="isolate"][data-name="service-3"]');
        await waitForState(page, "service-3", "isolated");
        const isolatedRow = page.locator('tr.breaker[data-name="service-3"]');
        assert.equal(
          await page.locator("tr.breaker").first().getAttribute("data-name"),
          "service-3",
        );
        await page.waitForTimeout(500); // a few refreshes
        assert.match(await isolatedRow.locator("output.feedback").innerText(), /^isolate done at /);
        assert.match(await isolatedRow.innerText(), /isolated by an operator/);
        await page.screenshot({ path: `${ARTIFACTS}status_page_isolated.png`, fullPage: true });

        // The filter keeps only matching rows, also across refreshes.
        await page.fill("#filter", "service-");
        await page.waitForTimeout(500);
        const shown = await page.locator("tr.breaker:not(.hidden)").evaluateAll((rows) =>
          rows.map((row) => (row as unknown as { dataset: Record<string, string> }).dataset.name)
        );
        assert.deepEqual(shown, ["service-3", "service-0", "service-1", "service-2", "service-4"]);
        await page.check("#not-closed");
        await page.waitForTimeout(300);
        assert.equal(await page.locator("tr.breaker:not(.hidden)").count(), 1);
      } finally {
        metrics?.[Symbol.dispose]();
      }
    });
  });

  it("shows an action's failure next to its button: a hold another handler released", async () => {
    let second: ((request: Request) => Promise<Response>) | undefined;
    const options = (registry: BreakerRegistry): StatusHandlerOptions => {
      second = statusHandler(registry, { authorize: () => true });
      return { authorize: () => true, refreshInterval: 60_000 };
    };
    await withStatusPage(browser, options, async ({ breaker, url, page, expectRefusals }) => {
      const db = breaker("db");
      await page.goto(url);
      await page.click('button[data-action="isolate"][data-name="db"]');
      await waitForState(page, "db", "isolated");
      // Released meanwhile through another handler (the hold belongs to the breaker).
      const released = await second!(
        new Request(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ action: "release", name: "db" }),
        }),
      );
      assert.equal(released.status, 200);
      await released.body?.cancel();
      assert.equal(db.state, "closed");
      await page.click('button[data-action="release"][data-name="db"]');
      await waitForState(page, "db", "closed");
      assert.equal(
        await page.locator('tr.breaker[data-name="db"] output.feedback').innerText(),
        'release failed: Breaker "db" is not isolated by an operator',
      );
      expectRefusals(409);
    });
  });

  it("lists 200 breakers and fits a 390 px phone without sideways scrolling", async () => {
    await withStatusPage(browser, {}, async ({ breaker, url, page }) => {
      for (let i = 0; i < 200; i++) {
        const member = breaker(`dependency-${String(i).padStart(3, "0")}`);
        if (i % 40 === 0) member.open();
      }
      await page.goto(url);
      assert.equal(await page.locator("tr.breaker").count(), 200);
      assert.equal(await page.locator('tr.breaker[data-state="open"]').count(), 5);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}status_page_200.png`, fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForTimeout(100);
      const widths = await page.evaluate(() => {
        const root = (globalThis as unknown as {
          document: { documentElement: { scrollWidth: number; clientWidth: number } };
        }).document.documentElement;
        return { scroll: root.scrollWidth, client: root.clientWidth };
      });
      assert.ok(widths.scroll <= widths.client, `scrolls sideways: ${JSON.stringify(widths)}`);
      await page.screenshot({ path: `${ARTIFACTS}status_page_phone.png` });
    });
  });
});
