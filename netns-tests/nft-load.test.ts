// A table made anew through netlink (netlink-writer.ts `loadFresh`, one transaction) is the table
// `nft -f` makes of render.ts's lines: in two namespaces of their own, the same services are
// loaded each way, and the kernel's views are compared — every chain's rules as the kernel dumps
// their expressions, every set's types, lengths, flags and timeout, every chain's hook — and so
// is `nft list table`, which also reads the sets' user data back. Traffic through the netlink-loaded
// table is what the other nftables suites check (the backend loads a new table this way).
// A table we trust refilled through netlink (`refill`, the hourly full sync and a change of the
// node's facts) is compared the same way with the `nft -f` refill of the same older table.
// Needs `npx tsc -p tsconfig.json` first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { Topology, type Namespace } from './harness/netns.js';

const DRIVER = resolve(import.meta.dirname, '..', 'dist/netns-tests/nft-load-driver.js');

let topo: Topology;
let viaNft: Namespace;
let viaNetlink: Namespace;

beforeAll(async () => {
  topo = await Topology.create();
  viaNft = await topo.namespace('by-nft');
  viaNetlink = await topo.namespace('by-netlink');
});

afterAll(async () => {
  await topo?.destroy();
});

async function load(ns: Namespace, mode: 'nft' | 'netlink' | 'netlink-staged' | 'nft-refill' | 'netlink-refill', family: string, nodePorts: string, detect: string, bulk = 0) {
  await ns.exec('nft', ['flush', 'ruleset']);
  const out = await ns.exec('node', [DRIVER, mode, family, nodePorts, detect, String(bulk)], { timeoutMs: 60_000 });
  const listing = await ns.exec('nft', ['list', 'table', family === 'IPv4' ? 'ip' : 'ip6', 'kube-dataplane']);
  return { stderr: out.stderr, view: JSON.parse(out.stdout.trim().split('\n').pop()!) as { rules: Record<string, string[]>; chains: unknown[]; sets: unknown[]; anonymous: number; declined?: boolean; kept?: number }, listing: listing.stdout };
}

describe('a table made anew through netlink is the table nft -f makes', () => {
  const cases = [
    ['IPv4', 'all', 'cidr'], ['IPv4', 'list', 'prefix'], ['IPv6', 'all', 'bridge'], ['IPv6', 'list', 'cidr'],
  ] as const;
  for (const [family, nodePorts, detect] of cases) {
    {
      it(`${family}, --nodeport-addresses ${nodePorts}, local traffic by ${detect}`, async () => {
        const a = await load(viaNft, 'nft', family, nodePorts, detect);
        const b = await load(viaNetlink, 'netlink', family, nodePorts, detect);
        expect(Object.keys(a.view.rules).length).toBeGreaterThan(15);
        expect(b.view.rules).toEqual(a.view.rules);
        expect(b.view.chains).toEqual(a.view.chains);
        expect(b.view.sets).toEqual(a.view.sets);
        expect(b.listing).toBe(a.listing);
        // The listing holds what an operator looks for: typeof maps, elements, the affinity chains.
        expect(a.listing).toMatch(/typeof .*daddr \. meta l4proto \. th dport \. numgen random mod 1/);
        expect(a.listing).toMatch(/numgen random mod 2 vmap \{ 0 : goto ep-/);
        expect(a.listing).toMatch(/@service-cidrs drop/);
        if (detect !== 'cidr') expect(a.listing).toContain(detect === 'bridge' ? 'iifname != "cbr0" jump mark-for-masquerade' : 'iifname != "veth*" jump mark-for-masquerade');
      });
    }
  }
});

describe('a table too large for one transaction', () => {
  for (const family of ['IPv4', 'IPv6']) {
    it(`${family}: made from nothing over many small transactions, it is the table nft -f makes; over an existing table the load declines`, async () => {
      const a = await load(viaNft, 'nft', family, 'all', 'cidr', 300);
      const b = await load(viaNetlink, 'netlink-staged', family, 'all', 'cidr', 300);
      expect(a.listing.match(/ : goto cluster-3,?\n/g)?.length ?? 0).toBeGreaterThanOrEqual(300);
      expect(b.view.rules).toEqual(a.view.rules);
      expect(b.view.sets).toEqual(a.view.sets);
      expect(b.listing).toBe(a.listing);
      // Replacing a table in several steps would let packets see a half-made one: nft -f does it.
      expect(b.view.declined).toBe(true);
      // And the operator is told why, once, with what lifts the limit.
      expect(b.stderr.match(/a full sync over the existing table \(a restart\) does not fit one nfnetlink transaction; nft -f makes it/g)).toHaveLength(1);
      expect(b.stderr).toMatch(/net\.core\.wmem_max/);
    });
  }
});

describe('a table we trust, refilled through netlink, is the table nft -f refills', () => {
  // The listing's sets, maps and chains, in name order (nft remakes the endpoint maps, layout.ts,
  // so the kernel lists them last), and without an affinity entry's remaining time, which
  // differs by the moment each namespace listed it.
  const blocks = (listing: string) => listing.replace(/ expires \S+/g, '').split(/\n(?=\t(?:set|map|chain) )/).sort();
  for (const [family, nodePorts, detect] of [['IPv4', 'all', 'cidr'], ['IPv6', 'list', 'bridge']] as const) {
    it(`${family}: new node facts, services and endpoint counts gone, the clients' affinity kept`, async () => {
      const a = await load(viaNft, 'nft-refill', family, nodePorts, detect);
      const b = await load(viaNetlink, 'netlink-refill', family, nodePorts, detect);
      expect(b.view.rules).toEqual(a.view.rules);
      expect(b.view.chains).toEqual(a.view.chains);
      const byName = (sets: unknown[]) => [...(sets as { name: string }[])].sort((x, y) => x.name.localeCompare(y.name));
      expect(byName(b.view.sets)).toEqual(byName(a.view.sets));
      // The numgen maps of the rules that went are gone with them.
      expect(a.view.anonymous).toBeGreaterThan(0);
      expect(b.view.anonymous).toBe(a.view.anonymous);
      expect(blocks(b.listing)).toEqual(blocks(a.listing));
      // What the older table had and this one has not is gone: its node facts, the 4-endpoint
      // chain, the affinity service's chains and sets.
      expect(a.listing).not.toMatch(/cluster-4|10\.220\.0\.0|fd20::/);
      expect(a.listing).not.toContain(family === 'IPv4' ? '172.30.0.20' : 'fd02::14');
      expect(a.view.kept).toBe(1);
      expect(b.view.kept).toBe(1);
    });
  }
});
