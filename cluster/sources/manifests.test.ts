import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
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

const INTERVAL = 100;

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
    // Fake timers: a scan runs when its interval has passed on the fake clock, and the test
    // waits for that scan's file I/O, never for wall-clock time.
    vi.useFakeTimers();
    catalog = new Catalog();
    source = new ManifestSource({ dir, intervalMs: INTERVAL });
    await source.start(catalog);
  });

  afterEach(async () => {
    await source.stop();
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One polling interval on the fake clock, and the scan it started. The source promises a
   *  change is seen within 1 s; its interval is the bound. */
  async function poll(): Promise<void> {
    await vi.advanceTimersByTimeAsync(INTERVAL);
    await source.settled();
  }

  it('loads multi-document files, lists and nested directories, and is synced', () => {
    expect(catalog.synced).toBe(true);
    expect([...catalog.services()].map((s) => s.key).sort()).toEqual(['default/web', 'prod/api']);
    expect(catalog.node('n1')?.podCIDRs).toEqual(['10.244.1.0/24']);
  });

  it('sees an added, a changed and a deleted file at the next scan', async () => {
    writeFileSync(join(dir, 'team/a/new.yaml'), service('db', '10.96.0.12'));
    await poll();
    expect(catalog.service('default/db') !== undefined).toBe(true);
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.20'));
    await poll();
    expect(catalog.service('default/web')?.clusterIPs[0] === '10.96.0.20').toBe(true);
    expect(catalog.service('prod/api')).toBeUndefined();
    unlinkSync(join(dir, 'team/a/new.yaml'));
    await poll();
    expect(catalog.service('default/db') === undefined).toBe(true);
  });

  it('reports a file that does not parse with its path and line, and keeps its last good content', async () => {
    lines.length = 0;
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10') + '---\nkind: Service\n  bad: [indent\n');
    await poll();
    expect(lines.some((l) => l.includes('manifest does not parse'))).toBe(true);
    const rec = JSON.parse(lines.find((l) => l.includes('manifest does not parse'))!);
    expect(rec).toMatchObject({ path: 'one.yaml', action: 'kept its last good content' });
    expect(rec.line).toBeGreaterThanOrEqual(8);
    expect(catalog.service('prod/api')).toBeDefined();
    // Fixing the file takes effect as usual.
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10'));
    await poll();
    expect(catalog.service('prod/api') === undefined).toBe(true);
  });

  it('delivers a change only for the objects of the edited file', async () => {
    const changed: string[][] = [];
    catalog.onChange((c) => changed.push([...c.services]));
    writeFileSync(join(dir, 'one.yaml'), service('web', '10.96.0.10') + '---\n' + service('api', '10.96.0.99', 'prod'));
    await poll();
    expect(changed.length > 0).toBe(true);
    expect(changed).toEqual([['prod/api']]);
  });

  it('lets the later file win for an object defined twice, and falls back when it goes', async () => {
    writeFileSync(join(dir, 'two.yaml'), service('web', '10.96.0.30'));
    await poll();
    expect(catalog.service('default/web')?.clusterIPs[0] === '10.96.0.30').toBe(true);
    unlinkSync(join(dir, 'two.yaml'));
    await poll();
    expect(catalog.service('default/web')?.clusterIPs[0] === '10.96.0.10').toBe(true);
  });

  it('reads JSON files and YAML documents alike', async () => {
    writeFileSync(join(dir, 'x.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'j' }, spec: { clusterIP: '10.96.0.40', ports: [{ port: 53, protocol: 'UDP' }] } }));
    await poll();
    expect(catalog.service('default/j')?.ports[0].protocol === 'UDP').toBe(true);
  });

  // Precedence is the sorted path order, whatever order the files appeared in: a.yaml added
  // after one.yaml does not beat it, before or after a restart.
  it('an object defined in two files comes from the later path in sorted order, always', async () => {
    writeFileSync(join(dir, 'a.yaml'), service('web', '10.96.0.30'));
    await poll();
    expect(catalog.service('default/web')?.clusterIPs).toEqual(['10.96.0.10']);
    await source.stop();
    const again = new Catalog();
    source = new ManifestSource({ dir, intervalMs: INTERVAL });
    await source.start(again);
    expect(again.service('default/web')?.clusterIPs).toEqual(['10.96.0.10']);
    // Removing the winner hands the object to the earlier path.
    unlinkSync(join(dir, 'one.yaml'));
    await poll();
    expect(again.service('default/web')?.clusterIPs).toEqual(['10.96.0.30']);
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
