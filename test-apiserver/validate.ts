// What kube-apiserver's validation would refuse in the fields kube-dataplane reads, checked on
// writes over HTTP (POST, PUT, PATCH) so that kubectl gets a 422 Invalid naming the object and
// the field. The programmatic writes (server.create/update/apply) stay unchecked: tests use them
// to feed clients the broken objects a client must survive.
export interface FieldError {
  readonly field: string;
  readonly value: unknown;
  readonly message: string;
}

/** An object that failed validation: HTTP 422 Invalid, one cause per field. */
export class InvalidError extends Error {
  constructor(readonly kind: string, readonly group: string, readonly objectName: string, readonly errors: readonly FieldError[]) {
    super(`${kind} "${objectName}" is invalid: ${errors.map((e) => `${e.field}: ${fieldMessage(e)}`).join(', ')}`);
  }
}

/** `Invalid value: 70000: must be between 1 and 65535, inclusive`, as kube-apiserver words it. */
export function fieldMessage(e: FieldError): string {
  return `Invalid value: ${JSON.stringify(e.value)}: ${e.message}`;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function checkName(kind: string, name: unknown, errors: FieldError[]): void {
  const [re, max, what] = kind === 'Service' || kind === 'Namespace'
    ? [kind === 'Service' ? DNS1035_LABEL : DNS1123_LABEL, 63, kind === 'Service' ? 'RFC 1035 label' : 'RFC 1123 label']
    : [DNS1123_SUBDOMAIN, 253, 'RFC 1123 subdomain'] as const;
  if (typeof name !== 'string' || name.length > max || !re.test(name)) {
    const message = `a lowercase ${what} must consist of lower case alphanumeric characters or '-' (at most ${max})`;
    errors.push({ field: 'metadata.name', value: name, message });
  }
}

function checkPort(field: string, port: unknown, errors: FieldError[]): void {
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
    errors.push({ field, value: port, message: 'must be between 1 and 65535, inclusive' });
  }
}

function checkProtocol(field: string, protocol: unknown, errors: FieldError[]): void {
  if (protocol !== undefined && !PROTOCOLS.includes(protocol as string)) {
    errors.push({ field, value: protocol, message: `supported values: ${PROTOCOLS.map((p) => `"${p}"`).join(', ')}` });
  }
}

function validateService(obj: Obj, errors: FieldError[]): void {
  const ports = asList(asObj(obj.spec).ports);
  const names = new Set<unknown>();
  ports.forEach((raw, i) => {
    const p = asObj(raw);
    checkPort(`spec.ports[${i}].port`, p.port, errors);
    checkProtocol(`spec.ports[${i}].protocol`, p.protocol, errors);
    const field = `spec.ports[${i}].name`;
    if (ports.length > 1 && (p.name === undefined || p.name === '')) errors.push({ field, value: p.name ?? '', message: 'Required value' });
    if (p.name !== undefined && names.has(p.name)) errors.push({ field, value: p.name, message: 'Duplicate value' });
    names.add(p.name);
  });
}

function validateEndpointSlice(obj: Obj, errors: FieldError[]): void {
  if (!['IPv4', 'IPv6', 'FQDN'].includes(obj.addressType as string)) {
    errors.push({ field: 'addressType', value: obj.addressType, message: 'supported values: "FQDN", "IPv4", "IPv6"' });
  }
  asList(obj.endpoints).forEach((raw, i) => {
    const addresses = asObj(raw).addresses;
    if (asList(addresses).length === 0) {
      errors.push({ field: `endpoints[${i}].addresses`, value: addresses ?? null, message: 'must contain at least 1 address' });
    }
  });
  asList(obj.ports).forEach((raw, i) => {
    const p = asObj(raw);
    if (p.port !== undefined) checkPort(`ports[${i}].port`, p.port, errors);
    checkProtocol(`ports[${i}].protocol`, p.protocol, errors);
  });
}

/** The field errors of `obj` (empty when it is valid). */
export function validate(kind: string, obj: Obj): FieldError[] {
  const errors: FieldError[] = [];
  checkName(kind, asObj(obj.metadata).name, errors);
  if (kind === 'Service') validateService(obj, errors);
  if (kind === 'EndpointSlice') validateEndpointSlice(obj, errors);
  return errors;
}
