import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configureLogging } from '../../common/log.js';
import { Catalog } from '../catalog.js';
import { ManifestSource, parseManifest, splitDocuments } from './manifests.js';

const lines: string[] = [];
configureLogging({ write: (l) => lines.push(l), format: 'json' });

const service = (name: string, ip: string, ns = 'default') => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterIP: ${ip}
  ports: [{ port: 80 }]
`;

/** Resolves when `cond` holds, polling; fails after `ms` — the source promises 1 s. */
async function within(ms: number, cond: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('ManifestSource', () => {
  let dir: string;
  let catalog: Catalog;
  let source: ManifestSource;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kdp-manifests-'));
    mkdirSync(join(dir, 'team/a'), { recursive: true });
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10') + '---\n' + service('api', '10.96.0.11', 'prod'));
    writeFileSync(
      join(dir, 'team/a/list.yml'),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDRs: ['10.244.1.0/24'] } }] }),
    );
    writeFileSync(join(dir, 'team/other.yaml'), 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: ignored }\n');
    catalog = new Catalog();
    source = new ManifestSource({ dir, intervalMs: 100 });
    await source.start(catalog);
  });

  afterEach(async () => {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads multi-document files, lists and nested directories, and is synced', () => {
    expect(catalog.synced).toBe(true);
    expect([...catalog.services()].map((s) => s.key).sort()).toEqual(['default/web', 'prod/api']);
    expect(catalog.node('n1')?.podCIDRs).toEqual(['10.244.1.0/24']);
  });

  it('sees an added, a changed and a deleted file within a second', async () => {
    writeFileSync(join(dir, 'team/a/new.yaml'), service('db', '10.96.0.12'));
    await within(1000, () => catalog.service('default/db') !== undefined);
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.20'));
    await within(1000, () => catalog.service('default/web')?.clusterIPs[0] === '10.96.0.20');
    expect(catalog.service('prod/api')).toBeUndefined();
    unlinkSync(join(dir, 'team/a/new.yaml'));
    await within(1000, () => catalog.service('default/db') === undefined);
  });

  it('reports a file that does not parse with its path and line, and keeps its last good content', async () => {
    lines.length = 0;
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10') + '---\nkind: Service\n  bad: [indent\n');
    await within(1000, () => lines.some((l) => l.includes('manifest does not parse')));
    const rec = JSON.parse(lines.find((l) => l.includes('manifest does not parse'))!);
    expect(rec).toMatchObject({ path: 'one.yaml', action: 'kept its last good content' });
    expect(rec.line).toBeGreaterThanOrEqual(8);
    expect(catalog.service('prod/api')).toBeDefined();
    // Fixing the file takes effect as usual.
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10'));
    await within(1000, () => catalog.service('prod/api') === undefined);
  });

  it('delivers a change only for the objects of the edited file', async () => {
    const changed: string[][] = [];
    catalog.onChange((c) => changed.push([...c.services]));
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10') + '---\n' + service('api', '10.96.0.99', 'prod'));
    await within(1000, () => changed.length > 0);
    expect(changed).toEqual([['prod/api']]);
  });

  it('lets the later file win for an object defined twice, and falls back when it goes', async () => {
    writeFileSync(join(dir, 'two.yaml'), service('web', '10.96.0.30'));
    await within(1000, () => catalog.service('default/web')?.clusterIPs[0] === '10.96.0.30');
    unlinkSync(join(dir, 'two.yaml'));
    await within(1000, () => catalog.service('default/web')?.clusterIPs[0] === '10.96.0.10');
  });

  it('reads JSON files and YAML documents alike', async () => {
    writeFileSync(join(dir, 'x.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'j' }, spec: { clusterIP: '10.96.0.40', ports: [{ port: 53, protocol: 'UDP' }] } }));
    await within(1000, () => catalog.service('default/j')?.ports[0].protocol === 'UDP');
  });

  it('refuses a missing directory with a clear error', async () => {
    await expect(new ManifestSource({ dir: join(dir, 'nope') }).start(new Catalog())).rejects.toThrow(/not a directory/);
  });
});

describe('splitDocuments and parseManifest', () => {
  it.each([
    ['a: 1\n---\nb: 2\n', [['a: 1\n', 0], ['b: 2\n', 2]]],
    ['---\na: 1\n', [['a: 1\n', 1]]],
    ['a: 1\r\n---\r\nb: 2', [['a: 1\r\n', 0], ['b: 2', 2]]],
    ['a: 1\n--- # next\nb: 2\n...\n', [['a: 1\n', 0], ['b: 2\n', 2]]],
    ['a: |\n  ---\n  text\n', [['a: |\n  ---\n  text\n', 0]]],
    ['a: 1\n---x: 2\n', [['a: 1\n---x: 2\n', 0]]],
  ])('splits %j', (text, want) => {
    expect(splitDocuments(text).map((d) => [d.text, d.line])).toEqual(want);
  });

  it('keeps content that follows a --- marker on its line', () => {
    const found = parseManifest('--- {apiVersion: v1, kind: Node, metadata: {name: n1}}\n', 'f.yaml');
    expect(found.map((f) => f.id)).toEqual(['Node//n1']);
  });

  it('reports the line of an error in a later document, counted in the whole file', () => {
    const text = 'apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [unclosed\n';
    expect(() => parseManifest(text, 'f.yaml')).toThrow(expect.objectContaining({ line: 7 }));
  });
});
