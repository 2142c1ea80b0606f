// The Corefile's syntax (CoreDNS's dialect of the Caddyfile): server blocks named by their keys
// (`.:53`, `example.com:5353 10.in-addr.arpa`), each a list of directives, a directive being a
// name, the arguments on its line, and maybe a block of its own. Plus what CoreDNS adds before
// parsing: `{$VAR}` and `{%VAR%}` from the environment, `(snippet) { … }` definitions and
// `import NAME|FILE-GLOB`. Only syntax here: what a directive means is config.ts's business, so
// every error carries the file and line it came from.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';

export interface Where {
  readonly file: string;
  readonly line: number;
}

export interface Directive {
  readonly name: string;
  readonly args: readonly string[];
  readonly at: Where;
  /** The `{ … }` after the arguments, when there is one. */
  readonly block?: readonly Directive[];
}

export interface ServerBlockSyntax {
  readonly keys: readonly string[];
  readonly at: Where;
  readonly directives: readonly Directive[];
}

export class CorefileError extends Error {
  constructor(readonly at: Where, message: string) {
    super(`${at.file}:${at.line}: ${message}`);
  }
}

interface Token {
  readonly text: string;
  readonly at: Where;
  /** Quoted text is never a brace, a comment or a snippet name. */
  readonly quoted: boolean;
}

const MAX_IMPORT_DEPTH = 10;

/** Reads and parses a Corefile; `import`ed files are read relative to it. */
export function readCorefile(path: string, env: NodeJS.ProcessEnv = process.env): ServerBlockSyntax[] {
  return parseCorefile(readFileSync(path, 'utf8'), path, env);
}

export function parseCorefile(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ServerBlockSyntax[] {
  const parser = new Parser(env);
  return parser.top(parser.lex(text, file), 0);
}

class Parser {
  private readonly snippets = new Map<string, Token[]>();

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  lex(text: string, file: string): Token[] {
    const out: Token[] = [];
    let line = 1;
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '\n') {
        line++;
        i++;
      } else if (c === ' ' || c === '\t' || c === '\r') {
        i++;
      } else if (c === '#') {
        while (i < text.length && text[i] !== '\n') i++;
      } else if (c === '"') {
        const at = { file, line };
        let s = '';
        i++;
        for (;;) {
          if (i >= text.length) throw new CorefileError(at, 'a quoted string is not closed');
          const d = text[i];
          if (d === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) {
            s += text[i + 1];
            i += 2;
            continue;
          }
          if (d === '"') break;
          if (d === '\n') line++;
          s += d;
          i++;
        }
        i++;
        out.push({ text: this.substitute(s, at), at, quoted: true });
      } else {
        const start = i;
        while (i < text.length && !/[\s"]/.test(text[i])) i++;
        const at = { file, line };
        out.push({ text: this.substitute(text.slice(start, i), at), at, quoted: false });
      }
    }
    return out;
  }

  /** `{$VAR}` and `{%VAR%}` (CoreDNS's environment substitution); an unset one is an error
   *  rather than an empty string, which would silently change a directive's meaning. */
  private substitute(s: string, at: Where): string {
    return s.replace(/\{\$([A-Za-z_][A-Za-z0-9_]*)\}|\{%([A-Za-z_][A-Za-z0-9_]*)%\}/g, (_m, a: string | undefined, b: string | undefined) => {
      const name = a ?? b ?? '';
      const v = this.env[name];
      if (v === undefined) throw new CorefileError(at, `environment variable ${name} is not set`);
      return v;
    });
  }

  /** Server blocks and snippet definitions, at the top of a file. */
  top(tokens: Token[], depth: number): ServerBlockSyntax[] {
    const blocks: ServerBlockSyntax[] = [];
    let i = 0;
    while (i < tokens.length) {
      const t = tokens[i];
      if (!t.quoted && t.text === 'import') {
        const expanded = this.importTokens(tokens, i, depth);
        tokens = [...tokens.slice(0, i), ...expanded.tokens, ...tokens.slice(expanded.end)];
        continue;
      }
      if (!t.quoted && /^\(.+\)$/.test(t.text)) {
        const open = tokens[i + 1];
        if (!open || open.quoted || open.text !== '{') throw new CorefileError(t.at, `snippet ${t.text} needs a { block }`);
        const end = matchingBrace(tokens, i + 1);
        this.snippets.set(t.text.slice(1, -1), tokens.slice(i + 2, end));
        i = end + 1;
        continue;
      }
      // Keys up to the `{`: on one line, comma or space separated.
      const keys: string[] = [];
      const at = t.at;
      while (i < tokens.length && (tokens[i].quoted || tokens[i].text !== '{')) {
        if (tokens[i].at.line !== at.line || tokens[i].at.file !== at.file) throw new CorefileError(tokens[i].at, `server block ${keys.join(' ')} needs a { block } on its line`);
        if (!tokens[i].quoted && tokens[i].text === '}') throw new CorefileError(tokens[i].at, 'a } closes nothing');
        keys.push(...tokens[i].text.split(',').filter(Boolean));
        i++;
      }
      if (i >= tokens.length) throw new CorefileError(at, `server block ${keys.join(' ')} needs a { block }`);
      if (!sameLine(tokens[i], t)) throw new CorefileError(at, `server block ${keys.join(' ')} needs a { block } on its line`);
      const end = matchingBrace(tokens, i);
      blocks.push({ keys, at, directives: this.directives(tokens.slice(i + 1, end), depth) });
      i = end + 1;
    }
    return blocks;
  }

  /** The directives of a block: one per line, a trailing `{` opening its own block. */
  private directives(tokens: Token[], depth: number): Directive[] {
    const out: Directive[] = [];
    let i = 0;
    while (i < tokens.length) {
      const t = tokens[i];
      if (!t.quoted && (t.text === '{' || t.text === '}')) throw new CorefileError(t.at, `unexpected ${t.text}`);
      if (!t.quoted && t.text === 'import') {
        const expanded = this.importTokens(tokens, i, depth);
        tokens = [...tokens.slice(0, i), ...expanded.tokens, ...tokens.slice(expanded.end)];
        continue;
      }
      const args: string[] = [];
      let j = i + 1;
      while (j < tokens.length && sameLine(tokens[j], t) && (tokens[j].quoted || tokens[j].text !== '{')) {
        if (!tokens[j].quoted && tokens[j].text === '}') throw new CorefileError(tokens[j].at, 'a } must be on a line of its own');
        args.push(tokens[j].text);
        j++;
      }
      if (j < tokens.length && !tokens[j].quoted && tokens[j].text === '{' && sameLine(tokens[j], t)) {
        const end = matchingBrace(tokens, j);
        out.push({ name: t.text, args, at: t.at, block: this.directives(tokens.slice(j + 1, end), depth) });
        i = end + 1;
      } else {
        out.push({ name: t.text, args, at: t.at });
        i = j;
      }
    }
    return out;
  }

  /** `import NAME` (a snippet) or `import GLOB` (files, relative to the importing file). */
  private importTokens(tokens: Token[], i: number, depth: number): { tokens: Token[]; end: number } {
    const t = tokens[i];
    const arg = tokens[i + 1];
    if (!arg || !sameLine(arg, t)) throw new CorefileError(t.at, 'import needs a snippet name or a file');
    if (depth >= MAX_IMPORT_DEPTH) throw new CorefileError(t.at, `imports nest more than ${MAX_IMPORT_DEPTH} deep (an import cycle?)`);
    let end = i + 2;
    while (end < tokens.length && sameLine(tokens[end], t)) end++;
    const snippet = this.snippets.get(arg.text);
    if (snippet) return { tokens: this.reLex(snippet, depth + 1), end };
    const files = globFiles(arg.text, dirname(t.at.file));
    if (files.length === 0) throw new CorefileError(arg.at, `import ${arg.text}: no such snippet or file`);
    const out: Token[] = [];
    for (const f of files) out.push(...this.reLex(this.lex(readFileSync(f, 'utf8'), f), depth + 1));
    return { tokens: out, end };
  }

  /** Imported tokens are themselves expanded (an import inside a snippet), depth-limited. */
  private reLex(tokens: Token[], depth: number): Token[] {
    const out: Token[] = [];
    for (let i = 0; i < tokens.length; ) {
      const t = tokens[i];
      if (!t.quoted && t.text === 'import') {
        const expanded = this.importTokens(tokens, i, depth);
        out.push(...expanded.tokens);
        i = expanded.end;
      } else {
        out.push(t);
        i++;
      }
    }
    return out;
  }
}

function sameLine(a: Token, b: Token): boolean {
  return a.at.line === b.at.line && a.at.file === b.at.file;
}

/** The index of the `}` that closes the `{` at `open`. */
function matchingBrace(tokens: readonly Token[], open: number): number {
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.quoted) continue;
    if (t.text === '{') depth++;
    else if (t.text === '}' && --depth === 0) return i;
  }
  throw new CorefileError(tokens[open].at, 'this { is not closed');
}

/** A path with `*` in its last part matches the files of that directory, sorted. */
function globFiles(pattern: string, base: string): string[] {
  const path = isAbsolute(pattern) ? pattern : join(base, pattern);
  const name = basename(path);
  if (!name.includes('*')) {
    try {
      readFileSync(path);
      return [path];
    } catch {
      return [];
    }
  }
  const re = new RegExp(`^${name.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  try {
    return readdirSync(dirname(path)).filter((f) => re.test(f)).sort().map((f) => join(dirname(path), f));
  } catch {
    return [];
  }
}
