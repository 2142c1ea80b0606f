// The deploy manifests as a reviewer reads them (issue 11, items 9 and 13): each half has its own
// container and probe, so a stalled proxy is restarted without node DNS; least privilege in every
// container; RBAC with only the verbs the code uses. And every document in manifests/deploy and
// manifests/example is valid against its kind's Kubernetes schema, offline (../schema-check.ts:
// field types, required fields, enums, and no field the kind does not have).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { typeProblems, validateSchema as validate, type ManifestDocument } from '../schema-check.js';

const here = dirname(fileURLToPath(import.meta.url));
const docs = (file: string) => yaml.loadAll(readFileSync(join(here, file), 'utf8')) as any[];
const ds = docs('daemonset.yaml')[0];
const pod = ds.spec.template.spec;
const containers: any[] = pod.containers;
const all: any[] = [...(pod.initContainers ?? []), ...containers];
const byCommand = (sub: string) => containers.filter((c) => [...(c.command ?? []), ...(c.args ?? [])].includes(sub));

describe('DaemonSet: one container per half', () => {
  it('the proxy and DNS run in containers of their own, from the same image', () => {
    const [proxy] = byCommand('proxy');
    const [dns] = byCommand('dns');
    expect(proxy, 'a container running `kube-dataplane proxy`').toBeDefined();
    expect(dns, 'a container running `kube-dataplane dns`').toBeDefined();
    expect(byCommand('agent')).toEqual([]);
    expect(proxy.image).toBe(dns.image);
  });

  it('DNS is restarted only for DNS\'s health; the proxy by /livez, which ignores node eligibility', () => {
    const [proxy] = byCommand('proxy');
    const [dns] = byCommand('dns');
    expect(proxy.livenessProbe.httpGet).toMatchObject({ path: '/livez', port: 10256 });
    expect(dns.livenessProbe.httpGet).toMatchObject({ host: '127.0.0.1', path: '/health', port: 8080 });
    expect(dns.readinessProbe.httpGet).toMatchObject({ host: '127.0.0.1', path: '/ready', port: 8181 });
    for (const c of containers) {
      if (c === proxy) continue;
      for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean)) expect(p.httpGet.port).not.toBe(10256);
    }
  });

  it('the IPAM plugin\'s node pod CIDRs file is still written (by the proxy container)', () => {
    const [proxy] = byCommand('proxy');
    expect(proxy.args.join(' ')).toContain('--node-pod-cidrs-file=/run/kube-dataplane/node-pod-cidrs.json');
    expect(proxy.volumeMounts.map((m: any) => m.mountPath)).toContain('/run/kube-dataplane');
  });
});

describe('DaemonSet: securityContext', () => {
  const allowed = new Set(['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE']);
  for (const c of all) {
    it(`${c.name}: drops ALL capabilities and adds back only network ones; no privilege escalation; read-only root`, () => {
      const sc = c.securityContext ?? {};
      expect(sc.capabilities?.drop).toEqual(['ALL']);
      for (const cap of sc.capabilities?.add ?? []) expect(allowed.has(cap), cap).toBe(true);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.privileged ?? false).toBe(false);
      expect(sc.readOnlyRootFilesystem).toBe(true);
      expect(sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    });
  }

  it('the proxy has NET_ADMIN and NET_RAW (iptables, nft, conntrack); DNS NET_BIND_SERVICE for port 53 and NET_ADMIN for its interface', () => {
    const [proxy] = byCommand('proxy');
    const [dns] = byCommand('dns');
    expect(proxy.securityContext.capabilities.add).toEqual(expect.arrayContaining(['NET_ADMIN', 'NET_RAW']));
    expect(dns.securityContext.capabilities.add).toEqual(['NET_ADMIN', 'NET_BIND_SERVICE']);
  });

  it('a writable /tmp (the conntrack batch file) on the read-only root; /lib/modules not mounted (nothing loads modules)', () => {
    const [proxy] = byCommand('proxy');
    const tmp = proxy.volumeMounts.find((m: any) => m.mountPath === '/tmp');
    expect(tmp).toBeDefined();
    expect(pod.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
    for (const c of all) expect((c.volumeMounts ?? []).map((m: any) => m.mountPath)).not.toContain('/lib/modules');
    expect(pod.volumes.map((v: any) => v.hostPath?.path)).not.toContain('/lib/modules');
  });
});

describe('RBAC', () => {
  const role = docs('rbac.yaml').find((d) => d.kind === 'ClusterRole');
  const verbs = (group: string, resource: string) =>
    role.rules.filter((r: any) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r: any) => r.verbs).sort();

  it('list/watch for what the informers read; get on nodes (the IPAM plugin); nothing else', () => {
    expect(verbs('', 'services')).toEqual(['list', 'watch']);
    expect(verbs('discovery.k8s.io', 'endpointslices')).toEqual(['list', 'watch']);
    expect(verbs('', 'nodes')).toEqual(['get', 'list', 'watch']);
    for (const r of role.rules) for (const v of r.verbs) expect(['get', 'list', 'watch']).toContain(v);
  });

  it('pods only for --pods verified, in a role of its own that is not bound by default', () => {
    expect(verbs('', 'pods')).toEqual([]);
    const overlay = docs('rbac-pods-verified.yaml');
    const podsRole = overlay.find((d) => d.kind === 'ClusterRole');
    expect(podsRole.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }]);
    expect(overlay.find((d) => d.kind === 'ClusterRoleBinding').roleRef.name).toBe(podsRole.metadata.name);
  });
});

describe('every manifest is valid against its kind\'s Kubernetes schema', () => {
  const dirs = [here, join(here, '../example')];
  const documents: ManifestDocument[] = dirs.flatMap((dir) =>
    readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) =>
      (yaml.loadAll(readFileSync(join(dir, f), 'utf8')) as any[]).filter(Boolean).map((doc, i) => ({ where: `${f}#${i}`, doc })),
    ),
  );

  it('finds the documents of both folders', () => {
    const kinds = new Set(documents.map((d) => d.doc.kind));
    for (const kind of ['DaemonSet', 'ConfigMap', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Service', 'EndpointSlice', 'Node']) expect(kinds).toContain(kind);
  });

  const problems = typeProblems(documents);
  for (const { where, doc } of documents) {
    it(`${where}: ${doc.kind} ${doc.metadata?.namespace ? doc.metadata.namespace + '/' : ''}${doc.metadata?.name}`, async () => {
      await expect(validate(doc)).resolves.toBeUndefined();
      expect(problems.get(where) ?? []).toEqual([]);
    });
  }
  it('the type-check of the documents itself had no problem', () => expect(problems.get('(compiler)') ?? []).toEqual([]));

  it('catches a broken manifest: a wrong field type, a missing required field, a bad enum value, an unknown kind', async () => {
    const wrongType = structuredClone(ds);
    wrongType.spec.template.spec.containers[0].ports[0].containerPort = '10256';
    await expect(validate(wrongType)).rejects.toThrow(/containers\/0\/ports\/0\/containerPort must be integer/);
    const noSelector = structuredClone(ds);
    delete noSelector.spec.selector;
    await expect(validate(noSelector)).rejects.toThrow(/spec must have required property .?selector/);
    const slice = documents.find((d) => d.doc.kind === 'EndpointSlice')!.doc;
    await expect(validate({ ...slice, addressType: 'IPv5' })).rejects.toThrow(/addressType must be equal to one of the allowed values/);
    await expect(validate({ ...ds, kind: 'DaemonSets' })).rejects.toThrow(/no schema for apiVersion apps\/v1 kind DaemonSets/);
  });

  it('catches a field the kind does not have: a misspelt securityContext field, a stray top-level key', () => {
    const misspelt = structuredClone(ds);
    const sc = misspelt.spec.template.spec.containers[0].securityContext;
    sc.readOnlyRootFilesytem = sc.readOnlyRootFilesystem;
    delete sc.readOnlyRootFilesystem;
    const stray = { ...docs('configmap.yaml')[0], spec: {} };
    const found = typeProblems([{ where: 'misspelt', doc: misspelt }, { where: 'stray', doc: stray }, { where: 'good', doc: ds }]);
    expect(found.get('misspelt')?.join('\n')).toMatch(/'"readOnlyRootFilesytem"' does not exist in type '\w*SecurityContext'/);
    expect(found.get('stray')?.join('\n')).toMatch(/'"spec"' does not exist in type 'IConfigMap'/);
    expect(found.get('good')).toBeUndefined();
  });
});
