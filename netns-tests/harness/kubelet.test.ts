// The kubelet stand-in's planning (pure, files in a temp dir): `$(VAR)` from env, fieldRefs,
// paths under volume mounts, ConfigMap keys as files, and clear errors for what it cannot plan.
// Run with the namespace tests (it lives beside the harness), though it needs no root.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './example-node.js';
import { manifestOf, planPod, type PodTemplate } from './kubelet.js';

const work = mkdtempSync(join(tmpdir(), 'kdp-kubelet-'));
const node = { nodeName: 'node-7', hostIP: '192.0.2.7', hostRoot: join(work, 'host'), podDir: join(work, 'pod') };

describe('planPod', () => {
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const template: PodTemplate = {
    initContainers: [{ name: 'install', command: ['cp', '/app/bin/x', '/host/opt/x'], volumeMounts: [{ name: 'bin', mountPath: '/host/opt' }] }],
    containers: [{
      name: 'main',
      command: ['/app/run', '--config', '/etc/cfg/config.yaml'],
      args: ['--node=$(NODE_NAME)', '--listen=$(NODE_IP):53', '--file=/run/state/f.json', '--keep=$(UNSET)'],
      env: [
        { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'GREETING', value: 'on $(NODE_NAME)' },
      ],
      volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg' }, { name: 'state', mountPath: '/run/state' }, { name: 'tmp', mountPath: '/tmp' }],
    }],
    volumes: [
      { name: 'bin', hostPath: { path: '/opt/cni/bin' } },
      { name: 'cfg', configMap: { name: 'settings' } },
      { name: 'state', hostPath: { path: '/run/thing', type: 'DirectoryOrCreate' } },
      { name: 'tmp', emptyDir: {} },
    ],
  };

  it('expands env into args, maps mounted paths to the node\'s volumes, leaves unknown $(VARS) as kubelet does', () => {
    const plan = planPod(template, { settings: { 'config.yaml': 'a: 1\n' } }, node, '/repo');
    const [main] = plan.containers;
    expect(main.argv).toEqual([
      '/repo/run', '--config', join(node.podDir, 'volumes/cfg/config.yaml'),
      '--node=node-7', '--listen=192.0.2.7:53', `--file=${join(node.hostRoot, 'run/thing')}/f.json`, '--keep=$(UNSET)',
    ]);
    expect(main.env).toMatchObject({ NODE_NAME: 'node-7', NODE_IP: '192.0.2.7', GREETING: 'on node-7', TMPDIR: join(node.podDir, 'volumes/tmp') });
    expect(readFileSync(join(node.podDir, 'volumes/cfg/config.yaml'), 'utf8')).toBe('a: 1\n');
    expect(statSync(join(node.hostRoot, 'run/thing')).isDirectory()).toBe(true);
    expect(plan.init[0].argv).toEqual(['cp', '/repo/bin/x', join(node.hostRoot, 'opt/cni/bin/x')]);
  });

  it('names the container and field it cannot plan', () => {
    const bad = (t: Partial<PodTemplate['containers'][0]>, volumes = template.volumes) =>
      () => planPod({ containers: [{ name: 'c', command: ['x'], ...t }], volumes }, { settings: {} }, node, '/repo');
    expect(bad({ env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } }] })).toThrow('container c: env fieldRef metadata.uid');
    expect(bad({ volumeMounts: [{ name: 'nope', mountPath: '/x' }] })).toThrow('container c: volumeMount nope names no volume');
    expect(bad({ command: [] })).toThrow('container c: no command');
    expect(bad({}, [{ name: 'cfg', configMap: { name: 'other' } }])).toThrow('volume cfg: ConfigMap other is not given');
  });

  it('plans the shipped DaemonSet: the proxy writes the pod CIDRs file into the node\'s /run/kube-dataplane', () => {
    const ds = manifestOf(join(ROOT, 'manifests/deploy/daemonset.yaml'), 'DaemonSet');
    const cm = manifestOf(join(ROOT, 'manifests/deploy/configmap.yaml'), 'ConfigMap');
    const plan = planPod(ds.spec.template.spec, { [cm.metadata.name]: cm.data }, node, ROOT);
    const proxy = plan.containers.find((c) => c.name === 'proxy')!;
    expect(proxy.argv).toContain(`--node-pod-cidrs-file=${join(node.hostRoot, 'run/kube-dataplane/node-pod-cidrs.json')}`);
    expect(plan.containers.find((c) => c.name === 'dns')!.argv).toContain('--listen=192.0.2.7:53');
  });
});
