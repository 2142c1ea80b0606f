// Runs a pod's containers from an OCI image with runc, the way a kubelet's runtime does for a
// hostNetwork pod: the container's command and args ($(VAR) expanded from its env), the
// capabilities, user, no-new-privileges and read-only root of its securityContext, the node's
// network and UTS namespaces, and its volumeMounts bound to the host paths the test gives.
// Every container is deleted (`runc delete -f`) when the runtime is, also after a failure; what
// a killed test process left (its runc state and bundles) goes when the next runtime starts.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, Process, run, type Namespace } from './netns.js';

/** The parts of a Kubernetes container spec that decide how it runs. */
export interface ContainerSpec {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

/** A volume as the test provides it: a host path (file or directory), or an in-memory tmpfs. */
export type Volume = { hostPath: string; readOnly?: boolean } | { tmpfs: true };

export interface RunOptions {
  /** The pod's id, for the container's runc id (`<pod>-<container>`). */
  pod: string;
  /** The node namespace the pod shares (hostNetwork); without it, a network namespace of its own. */
  node?: Namespace;
  /** Values of the downward API's fieldRefs, e.g. {'spec.nodeName': 'node-a'}. */
  fields?: Record<string, string>;
  /** The pod's volumes by name; every volumeMount of the container must find its volume here. */
  volumes?: Record<string, Volume>;
  /** Files the runtime itself puts in the container, e.g. /etc/resolv.conf. */
  files?: Record<string, string>;
  /** Arguments appended to the container's (what the test needs beyond the manifest). */
  extraArgs?: string[];
}

type OciConfig = Record<string, any>;

const DIR_PREFIX = 'kdp-runc-';

/** Deletes the containers and files of runtimes whose test process no longer exists. */
function reapOrphans(): void {
  for (const entry of readdirSync(tmpdir())) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(entry);
    if (!m || pidAlive(Number(m[1]))) continue;
    const state = join(tmpdir(), entry, 'state');
    for (const id of listContainers(state)) deleteContainerSync(state, id);
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

function listContainers(state: string): string[] {
  try {
    const out = execFileSync('runc', ['--root', state, 'list', '-q'], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function deleteContainerSync(state: string, id: string): void {
  try {
    execFileSync('runc', ['--root', state, 'delete', '--force', id], { stdio: 'ignore' });
  } catch {
    /* never created, or already gone */
  }
}

export class RuncRuntime {
  private readonly ids = new Set<string>();
  private readonly onExit = () => this.deleteAllSync();

  private constructor(
    private readonly dir: string,
    private readonly rootfs: string,
    private readonly template: OciConfig,
  ) {
    process.once('exit', this.onExit);
  }

  /** Unpacks `tag` of the OCI archive into a directory of its own (umoci: a rootfs and the
   *  image's runtime config), after deleting what runtimes of dead test processes left. */
  static async unpack(archive: string, tag: string): Promise<RuncRuntime> {
    reapOrphans();
    const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    const layout = join(dir, 'oci');
    mkdirSync(layout);
    await run('tar', ['-xf', archive, '-C', layout]);
    const bundle = join(dir, 'image');
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { timeoutMs: 120_000 });
    mkdirSync(join(dir, 'state'));
    const template = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciConfig;
    return new RuncRuntime(dir, join(bundle, 'rootfs'), template);
  }

  /** The image's own runtime config (from its OCI config: entrypoint, env, user). */
  get image(): OciConfig {
    return this.template;
  }

  /** Starts the container in the node's namespace (`runc run` in the foreground: its output is
   *  the Process's); the node's topology stops it with the rest. runc itself runs here, not
   *  through `ip netns exec`, whose fresh /sys has no cgroup mounts for runc to find. */
  start(
    container: ContainerSpec,
    opts: RunOptions & { node: Namespace },
  ): { process: Process; config: OciConfig } {
    const { args, config } = this.prepare(container, opts);
    const child = spawn('runc', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new Process(child, `${opts.pod}-${container.name}`);
    opts.node.topology.processes.add(p);
    return { process: p, config };
  }

  /** Runs a container to its end (an init container). */
  async runToExit(container: ContainerSpec, opts: RunOptions): Promise<{ code: number; output: string }> {
    const args = this.prepare(container, opts).args;
    const r = await run('runc', args, { allowFailure: true, timeoutMs: 60_000 });
    return { code: r.code, output: r.stdout + r.stderr };
  }

  /** Writes the container's bundle; returns runc's arguments to run it and the config. */
  private prepare(container: ContainerSpec, opts: RunOptions): { args: string[]; config: OciConfig } {
    const id = `${opts.pod}-${container.name}`;
    const bundle = join(this.dir, 'bundles', id);
    mkdirSync(bundle, { recursive: true });
    const config = this.config(container, opts, bundle);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
    this.ids.add(id);
    return { args: ['--root', join(this.dir, 'state'), 'run', '--bundle', bundle, id], config };
  }

  /** The OCI runtime config for one container of the pod; `bundle` gets the runtime's files. */
  private config(container: ContainerSpec, opts: RunOptions, bundle: string): OciConfig {
    const sc = container.securityContext ?? {};
    const env = containerEnv(container, opts.fields ?? {});
    // $(VAR) in command and args comes from the container's env, as the kubelet expands it.
    const expand = (s: string) =>
      s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string) => env.get(name) ?? all);
    const args = container.command
      ? [...container.command, ...(container.args ?? [])]
      : [...this.template.process.args];
    const caps = capabilities(container);
    const imageUser = this.template.process.user as { uid: number; gid: number };

    const mounts: OciConfig[] = [...this.template.mounts, ...volumeMounts(container, opts.volumes ?? {})];
    for (const [path, content] of Object.entries(opts.files ?? {})) {
      const source = join(bundle, path.replaceAll('/', '_'));
      writeFileSync(source, content);
      mounts.push({ destination: path, type: 'bind', source, options: ['rbind', 'ro'] });
    }

    // hostNetwork: the node's network namespace, and its hostname (no UTS namespace).
    const node = opts.node;
    const namespaces = (this.template.linux.namespaces as { type: string }[])
      .filter((n) => !(node && n.type === 'uts'))
      .map((n) => (node && n.type === 'network' ? { type: 'network', path: `/var/run/netns/${node.name}` } : n));
    const { hostname: _hostname, ...rest } = this.template;
    return {
      ...rest,
      ...(node ? {} : { hostname: opts.pod }),
      process: {
        ...this.template.process,
        terminal: false,
        args: [...args, ...(opts.extraArgs ?? [])].map(expand),
        env: [
          ...this.template.process.env.filter((e: string) => e !== 'TERM=xterm'),
          ...[...env].map(([k, v]) => `${k}=${v}`),
        ],
        user: {
          uid: sc.runAsUser ?? imageUser.uid,
          gid: sc.runAsGroup ?? (sc.runAsUser === 0 ? 0 : imageUser.gid),
        },
        capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
        noNewPrivileges: sc.allowPrivilegeEscalation === false,
      },
      root: { path: this.rootfs, readonly: sc.readOnlyRootFilesystem === true },
      mounts,
      linux: { ...this.template.linux, namespaces },
    };
  }

  /** Deletes every container it started and its files. */
  destroy(): void {
    this.deleteAllSync();
  }

  private deleteAllSync(): void {
    for (const id of this.ids) deleteContainerSync(join(this.dir, 'state'), id);
    this.ids.clear();
    process.off('exit', this.onExit);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The container's env, fieldRefs (the downward API) taken from `fields`. */
function containerEnv(container: ContainerSpec, fields: Record<string, string>): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    const value = e.value ?? (path !== undefined ? fields[path] : undefined);
    if (value === undefined) {
      throw new Error(`container ${container.name}: env ${e.name}: no value (fieldRef ${path ?? 'none'} not given to the test runtime)`);
    }
    env.set(e.name, value);
  }
  return env;
}

/** The capabilities the container keeps: drop ALL, then what it adds (the runtime's defaults are
 *  not modelled, so a container that does not drop ALL is refused). */
function capabilities(container: ContainerSpec): string[] {
  const caps = container.securityContext?.capabilities;
  if (!caps?.drop?.includes('ALL')) {
    throw new Error(`container ${container.name}: securityContext.capabilities.drop: the test runtime needs [ALL], got ${JSON.stringify(caps?.drop ?? [])}`);
  }
  return (caps.add ?? []).map((c) => `CAP_${c}`);
}

/** The container's volumeMounts as OCI mounts of the volumes the test gave. */
function volumeMounts(container: ContainerSpec, volumes: Record<string, Volume>): OciConfig[] {
  return (container.volumeMounts ?? []).map((m) => {
    const volume = volumes[m.name];
    if (!volume) {
      throw new Error(`container ${container.name}: volumeMounts ${m.name} (${m.mountPath}): no such volume given to the test runtime`);
    }
    if ('tmpfs' in volume) {
      return { destination: m.mountPath, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'size=16m'] };
    }
    const mode = m.readOnly || volume.readOnly ? 'ro' : 'rw';
    return { destination: m.mountPath, type: 'bind', source: volume.hostPath, options: ['rbind', mode] };
  });
}
