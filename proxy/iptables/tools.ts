// The iptables tools' names per flavour and family, and the choice between the legacy and
// nf_tables flavours (the tools run through common/process.ts).
import type { IPFamily } from '../../cluster/types.js';
import { runTool } from '../../common/process.js';

export type Flavour = 'legacy' | 'nft';

export function toolName(flavour: Flavour, family: IPFamily, what: 'restore' | 'save' | ''): string {
  const base = family === 'IPv4' ? 'iptables' : 'ip6tables';
  return `${base}-${flavour}${what ? `-${what}` : ''}`;
}

export interface FlavourChoice {
  flavour: Flavour;
  reason: string;
}

async function save(flavour: Flavour, family: IPFamily, table?: string): Promise<string> {
  const r = await runTool(toolName(flavour, family, 'save'), table ? ['-t', table] : [], undefined, 30_000);
  return r.code === 0 ? r.stdout : '';
}

/** Picks the flavour the host already uses, the way kube-proxy's image does: kubelet's marker
 *  chains first, then whichever flavour holds more rules; nft when neither has any. */
export async function chooseFlavour(requested: string): Promise<FlavourChoice> {
  if (requested === 'legacy' || requested === 'nft') return { flavour: requested, reason: `--iptables-backend ${requested}` };
  const marker = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;
  for (const flavour of ['nft', 'legacy'] as const) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      if (marker.test(await save(flavour, family, 'mangle'))) return { flavour, reason: `kubelet's marker chain is in the ${flavour} ${family} mangle table` };
    }
  }
  const count = async (flavour: Flavour) => {
    let n = 0;
    for (const family of ['IPv4', 'IPv6'] as const) n += (await save(flavour, family)).split('\n').filter((l) => l.startsWith('-A ')).length;
    return n;
  };
  const legacy = await count('legacy');
  const nft = await count('nft');
  if (legacy > nft) return { flavour: 'legacy', reason: `the host has ${legacy} legacy rules and ${nft} nf_tables rules` };
  return { flavour: 'nft', reason: nft > 0 ? `the host has ${nft} nf_tables rules and ${legacy} legacy rules` : 'no rules in either flavour; nf_tables is the default' };
}
