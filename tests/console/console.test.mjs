// The web console in headless Chromium (Debian's, driven by playwright-core; nothing is
// downloaded at test time). Run by tests/it/console.rs, which starts `vintagelake serve` with
// data and writes what the pages must show, computed from the published revisions, to $EXPECT.
//
// Env: CONSOLE_URL (http://127.0.0.1:PORT), EXPECT (a JSON file), ARTEFACTS (a directory for
// screenshots and downloads), CHROMIUM (the browser, default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const url = process.env.CONSOLE_URL;
const expect = JSON.parse(readFileSync(process.env.EXPECT, "utf8"));
const artefacts = process.env.ARTEFACTS;
mkdirSync(artefacts, { recursive: true });

const step = (what) => console.log("console test: " + what);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  // Script errors and policy violations (a refused request's own log line is expected).
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  page.setDefaultTimeout(30000);

  // Without credentials: the API refuses data, the page asks to sign in.
  step("refused without credentials");
  const refused = await page.request.post(url + "/api/v1/get?format=json", {
    data: JSON.stringify({ version: 1, view: "latest", series: [expect.series] }),
    headers: { "content-type": "application/json" },
  });
  assert.equal(refused.status(), 401, "data without a token");
  const wrong = await page.request.post(url + "/api/v1/get?format=json", {
    data: JSON.stringify({ version: 1, view: "latest", series: [expect.series] }),
    headers: { "content-type": "application/json", authorization: "Bearer not-a-token" },
  });
  assert.equal(wrong.status(), 401, "data with a wrong token");
  const loaded = await page.goto(url + "/");
  assert.match(loaded.headers()["content-security-policy"], /default-src 'self'/, "the page's content security policy");
  await page.waitForSelector("form#login");
  await page.screenshot({ path: join(artefacts, "01-login.png"), fullPage: true });

  // A wrong password is refused on the form; the right one signs in.
  await page.fill("#login-user", expect.user);
  await page.fill("#login-password", "wrong-" + expect.password);
  await page.click("#login-submit");
  await page.waitForSelector("form#login .error");
  await page.fill("#login-password", expect.password);
  await page.click("#login-submit");
  step("signed in");

  // Search a series and open it.
  await page.waitForSelector("#search");
  await page.fill("#search", expect.search);
  await page.waitForSelector(`#series-results[data-query="${expect.search}"]`);
  const row = page.locator(`#series-list tr[data-series="${expect.series}"]`);
  await row.waitFor();
  const shown = await page.locator("#series-list tbody tr").evaluateAll((trs) => trs.map((t) => t.dataset.series));
  assert.deepEqual(shown.sort(), [...expect.search_hits].sort(), "series found by the search");
  await page.screenshot({ path: join(artefacts, "02-series-browser.png"), fullPage: true });
  await row.locator("a").click();
  await page.waitForSelector('#series-page[data-ready="true"]');
  step("series page open");

  // The chart: latest and first release have one point per published value.
  const points = (cls) => page.locator(`#chart circle.pt-${cls}`).count();
  assert.equal(await points("latest"), expect.latest_points, "points of the latest line");
  assert.equal(await points("first"), expect.first_points, "points of the first-release line");

  // The as-of overlay follows the chosen vintage, value by value.
  for (const v of expect.as_of) {
    await page.selectOption("#asof", v.vintage);
    await page.waitForSelector(`#chart[data-asof="${v.vintage}"]`);
    const got = await page.locator("#chart circle.pt-asof").evaluateAll((cs) => cs.map((c) => [c.dataset.date, Number(c.dataset.value)]));
    assert.equal(got.length, v.points, `points as of ${v.vintage}`);
    assert.deepEqual(Object.fromEntries(got), v.values, `values as of ${v.vintage}`);
    step(`as of ${v.vintage}: ${got.length} points`);
  }
  await page.waitForSelector("#heatmap rect.cell");
  assert.equal(Number(await page.getAttribute("#heatmap", "data-cells")), expect.matrix_cells, "cells of the vintage matrix");
  const stats = await page.locator("#revision-stats tbody tr").count();
  assert.equal(stats, expect.latest_rows, "one revision-statistics row per observation");
  await page.screenshot({ path: join(artefacts, "03-series.png"), fullPage: true });

  // Downloads: the same bytes as `vintagelake get` (compared by the Rust side).
  for (const [view, format] of [["latest", "csv"], ["matrix", "csv"], ["latest", "parquet"]]) {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click(`button[data-view="${view}"][data-format="${format}"]`),
    ]);
    await download.saveAs(join(artefacts, `download.${view}.${format}`));
    step(`downloaded ${view} as ${format}: ${download.suggestedFilename()}`);
  }

  // Operations: readiness, metrics and the last compaction in the audit trail.
  await page.click("#nav-ops");
  await page.waitForSelector("#audit-table");
  await page.waitForSelector("#ready-table tr[data-check='flight']");
  await page.selectOption("#audit-action", "compact");
  const compaction = page.locator(`#audit-table tr[data-action="compact"][data-snapshot="${expect.last_compaction_snapshot}"]`);
  await compaction.waitFor();
  const actions = await page.locator("#audit-table tbody tr").evaluateAll((trs) => [...new Set(trs.map((t) => t.dataset.action))]);
  assert.deepEqual(actions, ["compact"], "the action filter");
  assert.match(await page.textContent("#last-compaction"), new RegExp(`snapshot ${expect.last_compaction_snapshot}\\b`));
  const committed = Number((await page.textContent("#stat-committed .value")).replace(/,/g, ""));
  assert.ok(committed >= expect.committed_at_least, `records committed on the page: ${committed}`);
  await page.screenshot({ path: join(artefacts, "04-operations.png"), fullPage: true });

  // Signing out leaves no token: the next page asks again.
  await page.click("#logout");
  await page.waitForSelector("form#login");
  assert.deepEqual(consoleErrors, [], "errors in the page's scripts");
  step("done");
} catch (e) {
  // What the page showed when it failed, for the test's output and artefacts.
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    await p.screenshot({ path: join(artefacts, "failure.png"), fullPage: true }).catch(() => {});
    console.log("page at failure (" + p.url() + "):\n" + (await p.innerText("main").catch((x) => String(x))));
  }
  throw e;
} finally {
  await browser.close();
}
