// Checks Kubernetes objects against the API's schemas offline, with kubernetes-models (a
// devDependency, for tests): its validators for field types, required fields and enum values,
// and its TypeScript interfaces, type-checked by the compiler, for what those validators let
// through: fields the kind does not have. A misspelt `readOnlyRootFilesytem` would otherwise
// pass here, and an API server with strict field validation refuses it.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** One object of a manifest file, and where it is (e.g. `daemonset.yaml#0`). */
export interface ManifestDocument {
  where: string;
  doc: any;
}

/** Validates one object against the schema of its apiVersion and kind; throws naming both, or
 *  the schema's complaints with their field paths. */
export async function validateSchema(doc: any): Promise<void> {
  const { apiVersion, kind } = doc ?? {};
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new Error('no apiVersion/kind');
  const models = await import(`kubernetes-models/${apiVersion}`).catch(() => undefined);
  const Model = models?.[kind];
  if (typeof Model !== 'function') throw new Error(`no schema for apiVersion ${apiVersion} kind ${kind}`);
  new Model(doc).validate();
}

/** What the compiler finds wrong with each object written as a literal of its kind's interface
 *  (unknown fields above all), by `where`; documents without a problem are left out. */
export function typeProblems(documents: readonly ManifestDocument[]): Map<string, string[]> {
  // The objects become modules beside this one, so that kubernetes-models resolves from here.
  const dir = dirname(fileURLToPath(import.meta.url));
  const sources = new Map<string, ManifestDocument>();
  const problems = new Map<string, string[]>();
  const report = (where: string, problem: string) =>
    problems.set(where, [...(problems.get(where) ?? []), problem]);
  documents.forEach((d, i) => {
    const { apiVersion, kind } = d.doc ?? {};
    const named = typeof apiVersion === 'string' && /^[A-Za-z][A-Za-z0-9]*$/.test(kind ?? '');
    if (!named) return report(d.where, 'no apiVersion/kind');
    sources.set(join(dir, `__manifest-${i}.ts`), d);
  });
  const text = ({ doc }: ManifestDocument) => {
    const from = JSON.stringify(`kubernetes-models/${doc.apiVersion}/${doc.kind}`);
    const literal = JSON.stringify(doc, null, 1);
    return `import type { I${doc.kind} } from ${from};\nexport const doc: I${doc.kind} = ${literal};\n`;
  };

  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (f) => (sources.has(f) ? text(sources.get(f)!) : readFile(f));
  host.fileExists = (f) => sources.has(f) || fileExists(f);
  const program = ts.createProgram([...sources.keys()], options, host);
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const d = diagnostic.file && sources.get(diagnostic.file.fileName);
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    if (d) report(d.where, message);
    else report('(compiler)', message);
  }
  return problems;
}
