#!/usr/bin/env node
import { runCli } from '../cli/main.js';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`kube-dataplane: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
