import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { NetlinkEventSocket } from './client.js';
import { NftMonitor } from './monitor.js';
import { NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_UNSPEC, NFTA_GEN, NFT_MSG, attr, attrNest, attrStr, attrU32, nfMessage, nftType } from './wire.js';

const OURS = 4242;
const OTHER = 777;

function setup() {
  const sock = new EventEmitter();
  const mon = new NftMonitor(Object.assign(sock, { close() {} }) as unknown as NetlinkEventSocket, 'kube-dataplane', () => OURS);
  /** One committed transaction: a rule added to `table`, then NEWGEN `gen`. */
  const commit = (pid: number, table: string, gen: number, family = NFPROTO_IPV4) => {
    const elem = nfMessage({ type: nftType(NFT_MSG.NEWRULE), flags: 0, seq: 1, pid }, family, 0, [attrStr(1, table), attrStr(2, 'services')]);
    const newgen = nfMessage({ type: nftType(NFT_MSG.NEWGEN), flags: 0, seq: 1, pid }, NFPROTO_UNSPEC, 0, [attrU32(NFTA_GEN.ID, gen)]);
    sock.emit('message', Buffer.concat([elem, newgen]), { port: 0, groups: 0 });
  };
  return { sock, mon, commit };
}

describe('nf_tables monitor: who else changed our table', () => {
  it('our own commits and others\' commits to other tables leave it untouched; another\'s to ours touches that family once', async () => {
    const { mon, commit } = setup();
    commit(OURS, 'kube-dataplane', 10);
    commit(OTHER, 'filter', 11); // iptables-nft
    expect((await mon.take('ip', 11, 0)).kind).toBe('untouched');
    commit(OTHER, 'kube-dataplane', 12, NFPROTO_IPV6);
    expect((await mon.take('ip', 12, 0)).kind).toBe('untouched');
    expect((await mon.take('ip6', 12, 0)).kind).toBe('touched');
    expect((await mon.take('ip6', 12, 0)).kind).toBe('untouched');
  });

  it('a generation it has not seen yet, or lost notifications, rule nothing out', async () => {
    const { sock, mon, commit } = setup();
    commit(OTHER, 'filter', 5);
    expect((await mon.take('ip', 6, 0)).kind).toBe('unknown');
    sock.emit('error', Object.assign(new Error('ENOBUFS'), { errno: 105 }));
    expect((await mon.take('ip', 5, 0)).kind).toBe('unknown');
    mon.resetLoss();
    expect((await mon.take('ip', 5, 0)).kind).toBe('untouched');
  });

  it('element changes by others are kept key by key, the last one winning', async () => {
    const { sock, mon } = setup();
    const key = Uint8Array.of(10, 96, 0, 1);
    const msg = (type: number, pid: number) => nfMessage({ type: nftType(type), flags: 0, seq: 1, pid }, NFPROTO_IPV4, 0, [
      attrStr(1, 'kube-dataplane'), attrStr(2, 'cluster-ips'), attrNest(3, [attrNest(1, [attrNest(1, [attr(1, key)])])]),
    ]);
    const gen = (n: number) => nfMessage({ type: nftType(NFT_MSG.NEWGEN), flags: 0, seq: 1, pid: OTHER }, NFPROTO_UNSPEC, 0, [attrU32(NFTA_GEN.ID, n)]);
    sock.emit('message', Buffer.concat([msg(NFT_MSG.DELSETELEM, OTHER), gen(7), msg(NFT_MSG.NEWSETELEM, OTHER), msg(NFT_MSG.DELSETELEM, OTHER), gen(8)]), { port: 0, groups: 0 });
    const t = await mon.take('ip', 8, 0);
    expect(t.kind).toBe('elements');
    const set = t.kind === 'elements' ? t.sets.get('cluster-ips') : undefined;
    expect([...(set?.values() ?? [])].map((e) => [Buffer.from(e.key).toString('hex'), e.now === undefined])).toEqual([['0a600001', true]]);
  });
});
