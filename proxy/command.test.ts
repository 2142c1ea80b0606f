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
});
