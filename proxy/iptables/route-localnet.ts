// net.ipv4.conf.all.route_localnet, which --iptables-localhost-nodeports needs: without it the
// kernel drops a packet from 127.0.0.1 once DNAT sent it towards a pod. kube-proxy sets it at
// start (and fails when it cannot: its DaemonSet is privileged). It is per network namespace:
// the one we run in.
import { readFile, writeFile } from 'node:fs/promises';

const PATH = '/proc/sys/net/ipv4/conf/all/route_localnet';

/** Sets route_localnet to 1; resolves to whether it had to change. */
export async function ensureRouteLocalnet(): Promise<boolean> {
  const now = (await readFile(PATH, 'utf8').catch(() => '')).trim();
  if (now === '1') return false;
  try {
    await writeFile(PATH, '1');
  } catch (err) {
    throw new Error(`net.ipv4.conf.all.route_localnet cannot be set: ${(err as Error).message}`);
  }
  return true;
}
