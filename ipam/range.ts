// Range sets, as host-local defines them: a range set gives one address per attachment, drawn
// from its ranges in order; a range is a subnet with an optional start, end and gateway.
import { cniError, ErrorCode } from './errors.js';
import {
  formatIP,
  lastAddress,
  parseCIDR,
  parseIP,
  prefixContains,
  prefixString,
  type Family,
  type IP,
  type Prefix,
} from '../common/ip-bigint.js';

export interface RangeSpec {
  subnet?: unknown;
  rangeStart?: unknown;
  rangeEnd?: unknown;
  gateway?: unknown;
}

export interface Range {
  prefix: Prefix;
  /** First and last allocatable address, inclusive. */
  start: bigint;
  end: bigint;
  gateway: bigint;
  /** Where it came from in the config, for error messages: "ipam.ranges[0][1]". */
  field: string;
}

export interface RangeSet {
  index: number;
  family: Family;
  ranges: Range[];
}

function invalid(msg: string): never {
  throw cniError(ErrorCode.invalidConfig, msg);
}

function addressIn(field: string, value: unknown, prefix: Prefix): bigint {
  if (typeof value !== 'string') invalid(`${field}: want an IP address string, got ${JSON.stringify(value)}`);
  const ip = parseIP(value);
  if (!ip) invalid(`${field}: ${JSON.stringify(value)} is not an IP address`);
  if (!prefixContains(prefix, ip)) invalid(`${field}: ${value} is not in subnet ${prefixString(prefix)}`);
  return ip.value;
}

/** Validates one range and fills the defaults host-local uses (gateway .1, start .1, end .254 / last). */
export function buildRange(spec: RangeSpec, field: string): Range {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) invalid(`${field}: want an object with "subnet", got ${JSON.stringify(spec)}`);
  if (typeof spec.subnet !== 'string') invalid(`${field}.subnet: want a CIDR string such as "10.244.0.0/24", got ${JSON.stringify(spec.subnet)}`);
  const parsed = parseCIDR(spec.subnet);
  if (!parsed) invalid(`${field}.subnet: ${JSON.stringify(spec.subnet)} is not a CIDR`);
  const { prefix } = parsed;
  const width = prefix.family === 4 ? 32 : 128;
  if (prefix.length > width - 2) {
    invalid(`${field}.subnet: ${prefixString(prefix)} is too small to allocate from (a /${width - 1} or /${width} leaves no address for pods)`);
  }
  const last = lastAddress(prefix);
  const gateway = spec.gateway === undefined ? prefix.network + 1n : addressIn(`${field}.gateway`, spec.gateway, prefix);
  const start = spec.rangeStart === undefined ? prefix.network + 1n : addressIn(`${field}.rangeStart`, spec.rangeStart, prefix);
  // IPv4 keeps its broadcast address out; IPv6 has none.
  const end = spec.rangeEnd === undefined ? (prefix.family === 4 ? last - 1n : last) : addressIn(`${field}.rangeEnd`, spec.rangeEnd, prefix);
  if (start > end) {
    invalid(`${field}: rangeStart ${formatIP(prefix.family, start)} is after rangeEnd ${formatIP(prefix.family, end)}`);
  }
  if (start === end && start === gateway) invalid(`${field}: the only address in the range is the gateway ${formatIP(prefix.family, gateway)}`);
  return { prefix, start, end, gateway, field };
}

export function rangeText(r: Range): string {
  const f = r.prefix.family;
  return `${prefixString(r.prefix)} (${formatIP(f, r.start)}-${formatIP(f, r.end)})`;
}

export function rangeSetText(s: RangeSet): string {
  return s.ranges.map(rangeText).join(', ');
}

function overlaps(a: Range, b: Range): boolean {
  return a.prefix.family === b.prefix.family && a.start <= b.end && b.start <= a.end;
}

/** Builds and cross-checks every range set: one family per set, no two ranges overlapping. */
export function buildRangeSets(specs: unknown, field: string): RangeSet[] {
  if (!Array.isArray(specs) || specs.length === 0) invalid(`${field}: want a non-empty list of range sets (lists of ranges), got ${JSON.stringify(specs)}`);
  const sets: RangeSet[] = [];
  const all: Range[] = [];
  specs.forEach((setSpec: unknown, i: number) => {
    const setField = `${field}[${i}]`;
    if (!Array.isArray(setSpec) || setSpec.length === 0) invalid(`${setField}: want a non-empty list of ranges, got ${JSON.stringify(setSpec)}`);
    const ranges = setSpec.map((r: RangeSpec, j: number) => buildRange(r, `${setField}[${j}]`));
    const family = ranges[0].prefix.family;
    for (const r of ranges) {
      if (r.prefix.family !== family) invalid(`${r.field}: IPv${r.prefix.family} range in a set of IPv${family} ranges (one family per range set)`);
    }
    for (const r of ranges) {
      for (const other of all) {
        if (overlaps(r, other)) invalid(`${r.field}: ${rangeText(r)} overlaps ${other.field} ${rangeText(other)}`);
      }
      all.push(r);
    }
    sets.push({ index: i, family, ranges });
  });
  return sets;
}

export function rangeFor(set: RangeSet, ip: IP): Range | undefined {
  if (ip.family !== set.family) return undefined;
  return set.ranges.find((r) => ip.value >= r.start && ip.value <= r.end);
}

/** Number of allocatable addresses in a set (gateways excluded). */
export function capacity(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set.ranges) {
    n += r.end - r.start + 1n;
    if (r.gateway >= r.start && r.gateway <= r.end) n -= 1n;
  }
  return n;
}
