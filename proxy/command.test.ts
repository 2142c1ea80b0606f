import { describe, expect, it } from 'vitest';
import { parseFlags, UsageError } from '../cli/flags.js';
import { main } from './command.js';

describe('kube-dataplane proxy options', () => {
  const opts = (...args: string[]) => parseFlags('proxy', ['--manifests', '/nonexistent', ...args]);

  it('--proxy-mode userspace is accepted: main gets past the options to the catalog', async () => {
    // The manifest directory is the next thing checked; reaching it means the mode passed.
    await expect(main(opts('--proxy-mode', 'userspace'))).rejects.toThrow(/--manifests \/nonexistent: not a directory/);
    await expect(main(opts('--proxy-mode', 'userspace', '--cluster-cidr', '10.0.0.0/33'))).rejects.toBeInstanceOf(UsageError);
  });

  it('--proxy-mode nftables is accepted and checks the same options', async () => {
    await expect(main(opts('--proxy-mode', 'nftables'))).rejects.toThrow(/--manifests \/nonexistent: not a directory/);
    await expect(main(opts('--proxy-mode', 'nftables', '--cluster-cidr', '10.0.0.0/33'))).rejects.toBeInstanceOf(UsageError);
  });

  it('bad CIDRs, node-port addresses and periods are usage errors naming the flag', async () => {
    await expect(main(opts('--cluster-cidr', '10.0.0.0/33'))).rejects.toThrow(/--cluster-cidr: "10.0.0.0\/33"/);
    await expect(main(opts('--nodeport-addresses', 'lan'))).rejects.toThrow(/--nodeport-addresses: "lan"/);
    await expect(main(opts('--min-sync-period', '1m', '--sync-period', '10s'))).rejects.toThrow(/--min-sync-period/);
    await expect(main(opts('--metrics-bind-address', 'nope'))).rejects.toThrow(/--metrics-bind-address/);
  });

  it('--cluster-cidr takes one CIDR per family, as kube-proxy does', async () => {
    await expect(main(opts('--cluster-cidr', '10.244.0.0/16,10.245.0.0/16'))).rejects.toThrow(/--cluster-cidr: 10\.244\.0\.0\/16, 10\.245\.0\.0\/16 are 2 IPv4 CIDRs/);
    await expect(main(opts('--cluster-cidr', '10.244.0.0/16,fd00::/48'))).rejects.toThrow(/not a directory/);
  });

  it('--detect-local-mode: interface modes need their flag; both rule modes take every mode', async () => {
    await expect(main(opts('--detect-local-mode', 'BridgeInterface'))).rejects.toThrow(/needs --pod-bridge-interface/);
    await expect(main(opts('--detect-local-mode', 'InterfaceNamePrefix'))).rejects.toThrow(/needs --pod-interface-name-prefix/);
    await expect(main(opts('--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'a b'))).rejects.toThrow(/--pod-bridge-interface: "a b" is not an interface name/);
    await expect(main(opts('--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0'))).rejects.toThrow(/not a directory/);
    await expect(main(opts('--detect-local-mode', 'NodeCIDR', '--proxy-mode', 'nftables'))).rejects.toThrow(/not a directory/);
    await expect(main(opts('--detect-local-mode', 'ClusterCIDR', '--proxy-mode', 'nftables'))).rejects.toThrow(/not a directory/);
  });
});
