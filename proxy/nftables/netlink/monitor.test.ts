import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { NetlinkEventSocket } from './client.js';
import { NftMonitor } from './monitor.js';
import { NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_UNSPEC, NFTA_GEN, NFT_MSG, attrStr, attrU32, nfMessage, nftType } from './wire.js';

const OURS = 4242;
const OTHER = 777;

function setup() {
  const sock = new EventEmitter();
  const mon = new NftMonitor(Object.assign(sock, { close() {} }) as unknown as NetlinkEventSocket, 'kube-dataplane', () => OURS);
  /** One committed transaction: its messages on `table`, then NEWGEN `gen`. */
  const commit = (pid: number, table: string, gen: number, family = NFPROTO_IPV4) => {
    const elem = nfMessage({ type: nftType(NFT_MSG.NEWSETELEM), flags: 0, seq: 1, pid }, family, 0, [attrStr(1, table), attrStr(2, 'service-ips')]);
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
    expect(await mon.take('ip', 11, 0)).toBe('untouched');
    commit(OTHER, 'kube-dataplane', 12, NFPROTO_IPV6);
    expect(await mon.take('ip', 12, 0)).toBe('untouched');
    expect(await mon.take('ip6', 12, 0)).toBe('touched');
    expect(await mon.take('ip6', 12, 0)).toBe('untouched');
  });

  it('a generation it has not seen yet, or lost notifications, rule nothing out', async () => {
    const { sock, mon, commit } = setup();
    commit(OTHER, 'filter', 5);
    expect(await mon.take('ip', 6, 0)).toBe('unknown');
    sock.emit('error', Object.assign(new Error('ENOBUFS'), { errno: 105 }));
    expect(await mon.take('ip', 5, 0)).toBe('unknown');
    mon.resetLoss();
    expect(await mon.take('ip', 5, 0)).toBe('untouched');
  });
});
