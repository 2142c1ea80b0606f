// The two ways to build the image carry the same layout: the Containerfile (for the usual
// engines; none runs here) and image/build.sh (`make image`, which netns-tests/image-runc.test.ts
// runs). Both read image/app-files.txt and image/packages.txt; these checks keep the rest of the
// Containerfile in step with them and with the DaemonSet.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const list = (path: string) => read(path).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const containerfile = read('Containerfile');
const buildScript = read('image/build.sh');
const pkg = JSON.parse(read('package.json')) as { version: string; description: string };
const version = pkg.version;
const pod = (yaml.load(read('manifests/deploy/daemonset.yaml')) as any).spec.template.spec;

/** The Containerfile's instructions of the final stage, continuation lines joined. */
function finalStage(): string[] {
  const lines = containerfile.replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  const from = lines.map((l, i) => (/^FROM /.test(l) ? i : -1)).filter((i) => i >= 0).at(-1)!;
  return lines.slice(from);
}

describe('Containerfile and image/build.sh: one layout', () => {
  it('copies exactly image/app-files.txt under /app', () => {
    const copied = finalStage()
      .map((l) => /^COPY --from=build \/src\/(\S+) \/app\/(\S+)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null);
    for (const m of copied) expect(m[2], m[0]).toBe(m[1]);
    expect(copied.map((m) => m[1]).sort()).toEqual(list('image/app-files.txt').sort());
    expect(buildScript).toContain('$(words image/app-files.txt)');
  });

  it('installs image/packages.txt, the tools the agent runs', () => {
    expect(list('image/packages.txt')).toEqual(expect.arrayContaining(['iptables', 'nftables', 'conntrack', 'iproute2']));
    expect(finalStage().join('\n')).toMatch(/COPY image\/packages\.txt \/tmp\/packages\.txt[\s\S]*apt-get install .*\/tmp\/packages\.txt/);
    expect(buildScript).toContain('packages=$(words image/packages.txt)');
  });

  it('prunes production node_modules with the same script', () => {
    expect(containerfile).toMatch(/npm ci --omit=dev .*&& prune-node-modules\.sh \/app\/node_modules/);
    expect(buildScript).toContain('image/prune-node-modules.sh "$work/modules/node_modules"');
  });

  it('the same entrypoint, user, version and description; the DaemonSet runs that entrypoint from that tag', () => {
    const stage = finalStage();
    const entrypoint = (JSON.parse(stage.find((l) => l.startsWith('ENTRYPOINT '))!.slice('ENTRYPOINT '.length)) as string[])[0];
    const user = stage.find((l) => l.startsWith('USER '))!.slice('USER '.length);
    expect(buildScript).toContain(`--config.entrypoint ${entrypoint} `);
    expect(buildScript).toContain(`--config.user ${user} `);
    expect(containerfile).toContain(`org.opencontainers.image.version=${version} `);
    expect(containerfile).toContain(`org.opencontainers.image.description="${pkg.description}"`);
    for (const c of pod.containers) {
      expect(c.image, c.name).toBe(`kube-dataplane:${version}`);
      expect(c.command[0], c.name).toBe(entrypoint);
    }
    // The init container copies the IPAM plugin from dist/cmd, which both builds ship.
    expect(pod.initContainers[0].command[1]).toMatch(/^\/app\/dist\/cmd\//);
    expect(list('image/app-files.txt')).toContain('dist/cmd');
  });

  it('root only where the DaemonSet needs it: the image runs as a user of its own', () => {
    expect(finalStage().find((l) => l.startsWith('USER '))).not.toMatch(/^USER (0|root)\b/);
    for (const c of [...pod.initContainers, ...pod.containers]) expect(c.securityContext.runAsUser, c.name).toBe(0);
  });
});
