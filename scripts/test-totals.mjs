#!/usr/bin/env node
// Sums the vitest JSON reports of every runner into the one line CI reads:
//   tests: N passed, M failed
// A runner whose report is missing (it crashed before writing) counts as one failure, and a run
// in which nothing ran fails too, so a broken harness can never look green. A failed type-check
// of the test files (marker file `typecheck.failed`, written by the Makefile) counts as one.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, ...runners] = process.argv.slice(2);
let passed = 0;
let failed = 0;
for (const runner of runners) {
  const file = join(dir, `${runner}.json`);
  try {
    const report = JSON.parse(readFileSync(file, 'utf8'));
    passed += report.numPassedTests ?? 0;
    failed += report.numFailedTests ?? 0;
    // A file that failed to load (syntax error, import error) has no tests but is a failure.
    for (const suite of report.testResults ?? []) {
      if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) failed += 1;
    }
  } catch (err) {
    console.error(`test-totals: no report from the ${runner} runner (${file}): ${err.message}`);
    failed += 1;
  }
}
// The type-check of the test files counts as one test: its failure must show in the totals.
if (existsSync(join(dir, 'typecheck.failed'))) {
  console.error('test-totals: the type-check of the test files failed');
  failed += 1;
}
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
