#!/usr/bin/env -S node --max-semi-space-size=2
// The V8 flag is part of how the agent runs (the DaemonSet and the benchmarks execute this file,
// so they get it): V8's young generation otherwise grows to 2×16 MiB while the catalog loads and
// keeps those pages, a fifth of the agent's memory at 10k services. 2 MiB semi-spaces measured
// no slower to load or to answer (dns/README.md, "Memory").
import { runCli } from '../cli/main.js';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`kube-dataplane: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
