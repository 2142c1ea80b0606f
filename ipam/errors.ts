// CNI errors: the spec's well-known codes (0–99) and this plugin's own (100+). The runtime shows
// `msg` to the user, so it names the object and the field that were wrong.
export const ErrorCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  /** Every address of a range set is taken. */
  rangeExhausted: 100,
  /** A requested address (CNI_ARGS IP=, args/runtimeConfig `ips`) cannot be given. */
  requestedAddressUnavailable: 101,
  /** A repeated ADD asks for addresses other than the ones the attachment already holds. */
  attachmentConflict: 102,
  /** CHECK found no allocation, or one that differs from prevResult. */
  allocationMissing: 103,
} as const;

export class CniError extends Error {
  constructor(readonly code: number, msg: string, readonly details = '') {
    super(msg);
  }
}

export function cniError(code: number, msg: string, details?: string): CniError {
  return new CniError(code, msg, details);
}
