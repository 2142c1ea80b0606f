// The V8 flags the agent runs with, read from the first line of its executable (where they are
// set, and where the DaemonSet gets them): a benchmark that runs agent code in a process of its
// own starts that process with the same flags, so it measures memory as deployed.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const AGENT = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'dist/cmd/kube-dataplane.js');

export function agentNodeFlags(): string[] {
  const first = readFileSync(AGENT, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node(?: (.*))?$/.exec(first);
  if (!m) throw new Error(`${AGENT}: first line ${JSON.stringify(first)} is not "#!/usr/bin/env -S node [flags]"`);
  return m[1] ? m[1].split(' ') : [];
}
