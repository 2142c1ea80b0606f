// One line per event. Text by default (`ts level component msg key=value …`), JSON with
// `--log-format json`. Errors name the object and the field and say what was done about it.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type Fields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

interface LogConfig {
  level: LogLevel;
  format: LogFormat;
  write: (line: string) => void;
}

const config: LogConfig = {
  level: 'info',
  format: 'text',
  // stderr: stdout belongs to commands whose output is data (catalog JSON, CNI results).
  write: (line) => process.stderr.write(line + '\n'),
};

export function configureLogging(opts: Partial<LogConfig>): void {
  Object.assign(config, opts);
}

export function isLogLevel(s: string): s is LogLevel {
  return s in LEVELS;
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v == null) return String(v);
  return JSON.stringify(v);
}

export class Logger {
  constructor(readonly component: string, private readonly base: Fields = {}) {}

  child(fields: Fields): Logger {
    return new Logger(this.component, { ...this.base, ...fields });
  }

  enabled(level: LogLevel): boolean {
    return LEVELS[level] >= LEVELS[config.level];
  }

  log(level: LogLevel, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const all = fields ? { ...this.base, ...fields } : this.base;
    const ts = new Date().toISOString();
    if (config.format === 'json') {
      const rec: Fields = { ts, level, component: this.component, msg };
      for (const [k, v] of Object.entries(all)) rec[k] = v instanceof Error ? v.message : v;
      config.write(JSON.stringify(rec));
      return;
    }
    let line = `${ts} ${level.toUpperCase().padEnd(5)} ${this.component} ${msg}`;
    for (const [k, v] of Object.entries(all)) line += ` ${k}=${formatValue(v)}`;
    config.write(line);
  }

  debug(msg: string, fields?: Fields): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: Fields): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: Fields): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: Fields): void { this.log('error', msg, fields); }
}

export function logger(component: string, fields?: Fields): Logger {
  return new Logger(component, fields);
}
