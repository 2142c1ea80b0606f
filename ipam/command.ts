// `kube-dataplane ipam …`: operator tools around the IPAM store (node-cidrs, gc).
export async function main(_argv: readonly string[]): Promise<number> {
  process.stderr.write('ipam: not implemented yet\n');
  return 1;
}
