// What a kubelet does with the DaemonSet's pod template on one node, short of containers: the
// command lines of its init container and containers with `$(VAR)` expanded from their `env`
// (spec.nodeName, status.hostIP), and every path under a volume mount turned into the place
// that volume lives on this node (a hostPath under the node's own root directory, a ConfigMap's
// keys as files, an emptyDir). The cluster harness runs these in the node's network namespace,
// so the agents run exactly the shipped manifests, not a copy of their flags.
//
// No mount namespaces: a path is rewritten where it appears in an argument (`/x`, `--f=/x`), and
// the `/tmp` mount becomes TMPDIR. What the programs open by a fixed path of their own (the
// xtables lock) is the machine's, as a hostPath of it would be.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import yaml from 'js-yaml';

export interface Container {
  name: string;
  argv: string[];
  env: Record<string, string>;
}

export interface PodPlan {
  init: Container[];
  containers: Container[];
}

export interface NodeFacts {
  nodeName: string;
  hostIP: string;
  /** Stands for the node's filesystem: hostPath volumes live below it. */
  hostRoot: string;
  /** Where this pod's ConfigMap and emptyDir volumes are made. */
  podDir: string;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

interface ContainerSpec {
  name: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
}

interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string };
  emptyDir?: unknown;
}

export interface PodTemplate {
  initContainers?: ContainerSpec[];
  containers: ContainerSpec[];
  volumes?: Volume[];
}

/** The objects of a YAML file of manifests. */
export function loadManifests(path: string): any[] {
  return yaml.loadAll(readFileSync(path, 'utf8')).filter(Boolean) as any[];
}

/** The one object of `kind` in a manifest file, or a clear error. */
export function manifestOf(path: string, kind: string): any {
  const found = loadManifests(path).filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`${path}: expected one ${kind}, found ${found.length}`);
  return found[0];
}

function fieldValue(path: string, container: string, node: NodeFacts): string {
  switch (path) {
    case 'spec.nodeName':
      return node.nodeName;
    case 'status.hostIP':
    case 'status.podIP': // hostNetwork: the pod's IP is the node's
      return node.hostIP;
    default:
      throw new Error(`container ${container}: env fieldRef ${path} is not one this harness knows`);
  }
}

/** `$(NAME)` from the container's env; an unknown name stays as written, as kubelet leaves it. */
function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
}

/**
 * Plans the pod of `template` on `node`: makes its volumes (ConfigMap data from `configMaps`, by
 * name) and returns the command lines with paths rewritten. `appDir` is where the image's `/app`
 * is (the repository: the image holds it there).
 */
export function planPod(template: PodTemplate, configMaps: Record<string, Record<string, string>>, node: NodeFacts, appDir: string): PodPlan {
  const volumeDirs = new Map<string, string>();
  for (const v of template.volumes ?? []) {
    if (v.hostPath) {
      const path = join(node.hostRoot, v.hostPath.path);
      if (v.hostPath.type === 'FileOrCreate') {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, '', { flag: 'a' });
      } else mkdirSync(path, { recursive: true });
      volumeDirs.set(v.name, path);
    } else if (v.configMap) {
      const data = configMaps[v.configMap.name];
      if (!data) throw new Error(`volume ${v.name}: ConfigMap ${v.configMap.name} is not given`);
      const dir = join(node.podDir, 'volumes', v.name);
      mkdirSync(dir, { recursive: true });
      for (const [key, content] of Object.entries(data)) writeFileSync(join(dir, key), content);
      volumeDirs.set(v.name, dir);
    } else if (v.emptyDir !== undefined) {
      const dir = join(node.podDir, 'volumes', v.name);
      mkdirSync(dir, { recursive: true });
      volumeDirs.set(v.name, dir);
    } else throw new Error(`volume ${v.name}: only hostPath, configMap and emptyDir are planned here`);
  }

  const plan = (c: ContainerSpec): Container => {
    const mounts: [string, string][] = [['/app', appDir]];
    for (const m of c.volumeMounts ?? []) {
      const dir = volumeDirs.get(m.name);
      if (!dir) throw new Error(`container ${c.name}: volumeMount ${m.name} names no volume`);
      mounts.push([m.mountPath, dir]);
    }
    mounts.sort((a, b) => b[0].length - a[0].length);
    const translate = (path: string): string => {
      for (const [inside, outside] of mounts) {
        if (path === inside || path.startsWith(inside + '/')) return outside + path.slice(inside.length);
      }
      return path;
    };
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (e.valueFrom?.fieldRef) env[e.name] = fieldValue(e.valueFrom.fieldRef.fieldPath, c.name, node);
      else throw new Error(`container ${c.name}: env ${e.name} has neither value nor fieldRef`);
    }
    const tmp = mounts.find(([inside]) => inside === '/tmp');
    if (tmp) env.TMPDIR = tmp[1];
    const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => {
      const text = expand(a, env);
      const eq = /^(--[^=]+=)(.*)$/s.exec(text);
      return eq ? eq[1] + translate(eq[2]) : translate(text);
    });
    if (argv.length === 0) throw new Error(`container ${c.name}: no command (the image's entrypoint is not known here)`);
    return { name: c.name, argv, env };
  };
  return { init: (template.initContainers ?? []).map(plan), containers: template.containers.map(plan) };
}
