// Dispatches `kube-dataplane COMMAND …`. Each command's module is imported only when chosen, so
// a short command does not pay for the API client or the DNS server at start.
import { readFileSync } from 'node:fs';
import { configureLogging, logger, type LogFormat, type LogLevel } from '../common/log.js';
import { parseFlags, usage, UsageError, type Command, type Options } from './flags.js';

export type CommandMain = (opts: Options) => Promise<number>;

const COMMANDS: Record<Command, () => Promise<CommandMain>> = {
  agent: async () => (await import('./agent.js')).main,
  proxy: async () => (await import('../proxy/command.js')).main,
  dns: async () => (await import('../dns/command.js')).main,
  catalog: async () => (await import('../cluster/command.js')).main,
};

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the command line; resolves to the process exit code. 2 means a bad flag or config. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [word, ...rest] = argv;
  if (!word || word === '--help' || word === '-h' || word === 'help') {
    process.stdout.write(usage() + '\n');
    return word ? 0 : 2;
  }
  if (word === '--version' || word === 'version') {
    process.stdout.write(`kube-dataplane ${version()}\n`);
    return 0;
  }
  if (word === 'ipam') return (await import('../ipam/command.js')).main(rest);
  if (!(word in COMMANDS)) {
    process.stderr.write(`kube-dataplane: unknown command ${JSON.stringify(word)} (try --help)\n`);
    return 2;
  }
  const command = word as Command;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(usage(command) + '\n');
    return 0;
  }
  if (rest.includes('--version')) {
    process.stdout.write(`kube-dataplane ${version()}\n`);
    return 0;
  }
  let opts: Options;
  try {
    opts = parseFlags(command, rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kube-dataplane ${command}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  configureLogging({ level: opts.logLevel as LogLevel, format: opts.logFormat as LogFormat });
  try {
    return await (await COMMANDS[command]())(opts);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kube-dataplane ${command}: ${err.message}\n`);
      return 2;
    }
    logger(command).error('fatal', { error: (err as Error).stack ?? String(err) });
    return 1;
  }
}

/** Resolves when the process is asked to stop (SIGTERM, SIGINT). */
export function untilSignalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
