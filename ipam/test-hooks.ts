// Fault injection for the namespace tests, compiled into the test build of the plugin only.
//
// The Makefile bundles the plugin twice: the shipped bundle with KDP_IPAM_TEST_HOOKS defined as
// false, so esbuild (--minify-syntax) drops the branch below and the variable's name is not even in the file, and a
// test bundle (dist/test/) with it true. Anything else (tsc's dist/, vitest) leaves it undefined:
// hooks off. A production node can then never be made to sit in the lock by its environment.
declare const KDP_IPAM_TEST_HOOKS: boolean | undefined;

/** How long ADD stays inside the lock (KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS), test build only. */
export function testHoldMs(env: NodeJS.ProcessEnv): number | undefined {
  if (typeof KDP_IPAM_TEST_HOOKS !== 'undefined' && KDP_IPAM_TEST_HOOKS) {
    return Number(env.KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS) || undefined;
  }
  return undefined;
}
