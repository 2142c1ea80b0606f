// The CNI IPAM plugin protocol: CNI_COMMAND from the environment, config on stdin, result on stdout.
export async function runPlugin(): Promise<number> {
  process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', code: 4, msg: 'kube-dataplane-ipam is not implemented yet' }) + '\n');
  return 1;
}
