// Kubernetes' protobuf encoding, read as far as kubectl's typed clients need it here: kubectl 1.32
// sends `kubectl create namespace` as application/vnd.kubernetes.protobuf and does not retry with
// JSON. The envelope is runtime.Unknown after the magic "k8s\0" (typeMeta = 1 {apiVersion = 1,
// kind = 2}, raw = 2); inside, a Namespace (metadata = 1, spec = 2 {finalizers = 1}) with the
// ObjectMeta fields a client sets (name = 1, generateName = 2, namespace = 3, labels = 11,
// annotations = 12, finalizers = 14). Other kinds are refused with 415: send them as JSON.
import { UnsupportedPatchType } from './patch/patch.js';

const MAGIC = Buffer.from('k8s\0', 'latin1');

type Fields = Map<number, Array<number | Buffer>>;

/** One message's fields: field number → the raw values (varints as numbers, the rest as bytes). */
function fields(buf: Buffer): Fields {
  const out: Fields = new Map();
  let i = 0;
  const varint = (): number => {
    let n = 0;
    for (let shift = 0; ; shift += 7) {
      if (i >= buf.length) throw new TypeError('protobuf body: truncated varint');
      const b = buf[i++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const num = Math.floor(key / 8);
    let value: number | Buffer;
    switch (key & 7) {
      case 0: value = varint(); break;
      case 1: value = buf.subarray(i, (i += 8)); break;
      case 2: { const len = varint(); value = buf.subarray(i, (i += len)); break; }
      case 5: value = buf.subarray(i, (i += 4)); break;
      default: throw new TypeError(`protobuf body: wire type ${key & 7} of field ${num} is not supported`);
    }
    if (i > buf.length) throw new TypeError('protobuf body: truncated field');
    out.set(num, [...(out.get(num) ?? []), value]);
  }
  return out;
}

const bytes = (m: Fields, n: number): Buffer[] => (m.get(n) ?? []).filter((v): v is Buffer => Buffer.isBuffer(v));
/** The last value of a string field ('' as absent: proto3 writes empty strings). */
const text = (m: Fields, n: number): string | undefined => bytes(m, n).at(-1)?.toString('utf8') || undefined;
const texts = (m: Fields, n: number): string[] => bytes(m, n).map((b) => b.toString('utf8'));

function stringMap(m: Fields, n: number): Record<string, string> | undefined {
  const entries = bytes(m, n).map((e) => fields(e)).map((e) => [text(e, 1) ?? '', text(e, 2) ?? ''] as const);
  return entries.length ? Object.fromEntries(entries) : undefined;
}

function objectMeta(buf: Buffer | undefined): Record<string, unknown> {
  const m = fields(buf ?? Buffer.alloc(0));
  const meta: Record<string, unknown> = {
    name: text(m, 1), generateName: text(m, 2), namespace: text(m, 3),
    labels: stringMap(m, 11), annotations: stringMap(m, 12), finalizers: texts(m, 14).length ? texts(m, 14) : undefined,
  };
  return Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== undefined));
}

/** The object in a protobuf request body. */
export function decodeProtobufBody(body: Buffer): Record<string, unknown> {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new TypeError('protobuf body: no "k8s\\0" envelope');
  const unknown = fields(body.subarray(4));
  const typeMeta = fields(bytes(unknown, 1)[0] ?? Buffer.alloc(0));
  const apiVersion = text(typeMeta, 1);
  const kind = text(typeMeta, 2);
  if (kind !== 'Namespace') {
    const what = `protobuf bodies are decoded for Namespace only (kubectl create namespace), not ${JSON.stringify(kind)}`;
    throw new UnsupportedPatchType(`${what}: send application/json`);
  }
  const ns = fields(bytes(unknown, 2)[0] ?? Buffer.alloc(0));
  const spec = fields(bytes(ns, 2)[0] ?? Buffer.alloc(0));
  const finalizers = texts(spec, 1);
  return { apiVersion, kind, metadata: objectMeta(bytes(ns, 1)[0]), ...(finalizers.length ? { spec: { finalizers } } : {}) };
}
