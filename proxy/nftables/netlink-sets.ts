// The table's set and map declarations as NFT_MSG_NEWSET takes them (netlink/messages.ts
// SetSpec): what layout.ts declares in nft's words, spelled as the kernel's key/data types and
// lengths plus nft's own user data. The kernel keeps the user data opaque; nft reads it back to
// print the set as it was declared (`typeof ip daddr . …`, key byte order), so a table loaded
// here lists like one loaded by `nft -f` (the netns test compares both, set by set).
import type { IPFamily } from '../../cluster/types.js';
import { NFT_DATA_VERDICT, NFT_SET_FLAGS } from './netlink/wire.js';
import type { SetSpec } from './netlink/messages.js';
import { isEndpointMap, type FieldKind, type MapSchema } from './layout.js';

// nft's datatype numbers (TYPE_*), combined for a concatenation 6 bits per field.
const TYPE_INTEGER = 4;
const TYPE_IPADDR = 7;
const TYPE_IP6ADDR = 8;
const TYPE_INET_PROTOCOL = 12;
const TYPE_INET_SERVICE = 13;
const TYPE_BITS = 6;

function fieldType(family: IPFamily, k: FieldKind): number {
  switch (k) {
    case 'addr':
    case 'cidr':
      return family === 'IPv4' ? TYPE_IPADDR : TYPE_IP6ADDR;
    case 'proto':
      return TYPE_INET_PROTOCOL;
    case 'port':
      return TYPE_INET_SERVICE;
    case 'slot':
      return TYPE_INTEGER;
  }
}

function fieldLen(family: IPFamily, k: FieldKind): number {
  switch (k) {
    case 'addr':
    case 'cidr':
      return family === 'IPv4' ? 4 : 16;
    case 'proto':
      return 1;
    case 'port':
      return 2;
    case 'slot':
      return 4;
  }
}

function typeOf(family: IPFamily, fields: readonly FieldKind[]): { type: number; len: number } {
  if (fields.length === 1) return { type: fieldType(family, fields[0]), len: fieldLen(family, fields[0]) };
  let type = 0;
  let len = 0;
  for (const k of fields) {
    type = (type << TYPE_BITS) | fieldType(family, k);
    len += (fieldLen(family, k) + 3) & ~3; // each field of a concatenation takes whole registers
  }
  return { type, len };
}

// ---------------------------------------------------------------- nft's set user data (libnftnl udata)

// Each entry is type (u8), length (u8), value; integers in host order.
const UDATA_KEYBYTEORDER = 0;
const UDATA_DATABYTEORDER = 1;
const UDATA_KEY_TYPEOF = 3;
const UDATA_DATA_TYPEOF = 4;
const UDATA_DATA_INTERVAL = 6;
const TYPEOF_EXPR = 0;
const TYPEOF_DATA = 1;
const BYTEORDER_INVALID = 0;
const BYTEORDER_HOST = 1;
const BYTEORDER_BIG_ENDIAN = 2;
// nft's expression kinds (EXPR_*) and protocol descriptions (PROTO_DESC_*) as its udata names them.
const EXPR_VERDICT = 1;
const EXPR_PAYLOAD = 7;
const EXPR_META = 9;
const EXPR_CONCAT = 13;
const EXPR_NUMGEN = 23;
const PROTO_DESC_TH = 11;
const PROTO_DESC_IP = 12;
const PROTO_DESC_IP6 = 13;
const META_L4PROTO = 16;

function tlv(type: number, value: Uint8Array): Buffer {
  if (value.length > 255) throw new Error(`set user data entry ${type} is ${value.length} bytes`);
  return Buffer.concat([Uint8Array.of(type, value.length), value]);
}

function u32(type: number, n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return tlv(type, b);
}

const nest = (type: number, parts: readonly Buffer[]) => tlv(type, Buffer.concat(parts));
const typeofExpr = (kind: number, data: readonly Buffer[]) => [u32(TYPEOF_EXPR, kind), nest(TYPEOF_DATA, data)];

/** One field of a `typeof` declaration: `ip daddr`, `meta l4proto`, `th dport`, `numgen random mod 1`. */
function typeofField(family: IPFamily, k: FieldKind): Buffer[] {
  switch (k) {
    case 'addr':
    case 'cidr': // payload: protocol description, template field (ip daddr 12, ip6 daddr 9)
      return typeofExpr(EXPR_PAYLOAD, family === 'IPv4' ? [u32(0, PROTO_DESC_IP), u32(1, 12)] : [u32(0, PROTO_DESC_IP6), u32(1, 9)]);
    case 'proto':
      return typeofExpr(EXPR_META, [u32(0, META_L4PROTO)]);
    case 'port':
      return typeofExpr(EXPR_PAYLOAD, [u32(0, PROTO_DESC_TH), u32(1, 2)]);
    case 'slot': // numgen: mode (random), modulus, offset
      return typeofExpr(EXPR_NUMGEN, [u32(0, 1), u32(1, 1), u32(2, 0)]);
  }
}

function typeofConcat(family: IPFamily, fields: readonly FieldKind[] | undefined): Buffer[] {
  const items = (fields ?? []).map((k, i) => nest(i, typeofField(family, k)));
  return typeofExpr(EXPR_CONCAT, items);
}

/** What nft 1.0.6 writes for each kind of declaration in layout.ts (the netns test compares). */
function userdata(family: IPFamily, schema: MapSchema): Buffer {
  const concat = schema.key.length > 1;
  const parts: Buffer[] = [u32(UDATA_KEYBYTEORDER, concat ? BYTEORDER_INVALID : BYTEORDER_BIG_ENDIAN)];
  if (schema.value !== undefined) parts.push(u32(UDATA_DATABYTEORDER, BYTEORDER_INVALID));
  if (isEndpointMap(schema)) {
    parts.push(nest(UDATA_KEY_TYPEOF, typeofConcat(family, schema.key)));
    parts.push(nest(UDATA_DATA_TYPEOF, typeofConcat(family, schema.value as readonly FieldKind[])));
  } else if (concat) parts.push(nest(UDATA_KEY_TYPEOF, typeofConcat(family, undefined)));
  if (schema.value !== undefined) parts.push(u32(UDATA_DATA_INTERVAL, 0));
  return Buffer.concat(parts);
}

/** The NEWSET of one of layout.ts's maps and sets. */
export function setSpec(family: IPFamily, schema: MapSchema): SetSpec {
  const key = typeOf(family, schema.key);
  const interval = schema.key.includes('cidr');
  let flags = interval ? NFT_SET_FLAGS.INTERVAL : 0;
  if (interval && schema.key.length > 1) flags |= NFT_SET_FLAGS.CONCAT;
  const spec: SetSpec = { name: schema.name, flags, keyType: key.type, keyLen: key.len, userdata: userdata(family, schema) };
  if (interval && schema.key.length > 1) spec.fieldLens = schema.key.map((k) => fieldLen(family, k));
  if (schema.value === 'verdict') Object.assign(spec, { dataType: NFT_DATA_VERDICT, dataLen: 16 });
  else if (schema.value) {
    const data = typeOf(family, schema.value);
    Object.assign(spec, { dataType: data.type, dataLen: data.len });
  }
  if (schema.value !== undefined) spec.flags |= NFT_SET_FLAGS.MAP;
  return spec;
}

/** An affinity set (`{ type ipv4_addr ; flags dynamic,timeout ; timeout Ns ; }`), as nft sends
 *  it: without a size. The kernel still lists it with 65535 slots (the limit of a set a rule
 *  updates), but a size given here is taken as the hash table's initial size: 2 MB of kernel
 *  memory per set allocated at once, and 1000 of them took seconds to make. */
export function affinitySetSpec(family: IPFamily, name: string, seconds: number): SetSpec {
  const key = typeOf(family, ['addr']);
  return {
    name, flags: NFT_SET_FLAGS.TIMEOUT | NFT_SET_FLAGS.EVAL, keyType: key.type, keyLen: key.len, timeoutMs: seconds * 1000,
    userdata: u32(UDATA_KEYBYTEORDER, BYTEORDER_BIG_ENDIAN),
  };
}

/** The anonymous verdict map of `numgen random mod n vmap { 0 : goto …, … }`: the kernel names
 *  it (`__map%d`), the transaction refers to it by `id`. */
export function anonymousSlotMapSpec(id: number, n: number): SetSpec {
  return {
    name: '__map%d', id, flags: NFT_SET_FLAGS.ANONYMOUS | NFT_SET_FLAGS.CONSTANT | NFT_SET_FLAGS.MAP,
    keyType: TYPE_INTEGER, keyLen: 4, dataType: NFT_DATA_VERDICT, dataLen: 16, size: n,
    userdata: Buffer.concat([u32(UDATA_KEYBYTEORDER, BYTEORDER_HOST), u32(UDATA_DATABYTEORDER, BYTEORDER_INVALID), nest(UDATA_DATA_TYPEOF, typeofExpr(EXPR_VERDICT, [])), u32(UDATA_DATA_INTERVAL, 0)]),
  };
}
