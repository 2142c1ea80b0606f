// apimachinery's name rules (k8s.io/apimachinery/pkg/util/validation), checked where objects
// enter the catalog. The API server enforces them on every object it stores, so a real cluster
// never trips them; a manifest file or a hostile client can. Names end up in iptables comments,
// nftables chain and map text, DNS answers and log lines: every consumer may rely on them having
// only the characters these rules allow (no quotes, spaces, newlines or shell-special bytes).
// Each function returns the reason a value fails, or undefined when it is valid.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^[-a-z0-9]+$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const show = (v: unknown) => JSON.stringify(v);

/** IsDNS1123Label: namespaces, port names of Services and EndpointSlices, hostnames. */
export function dns1123Label(v: unknown): string | undefined {
  if (typeof v !== 'string') return `${show(v)} is not a string`;
  if (v.length > 63) return `${show(v)} is longer than 63 characters (RFC 1123 label)`;
  if (!DNS1123_LABEL.test(v)) return `${show(v)} is not an RFC 1123 label (lower case letters, digits and '-', starting and ending with a letter or digit)`;
  return undefined;
}

/** IsDNS1123Subdomain: names of EndpointSlices, Nodes and Pods. */
export function dns1123Subdomain(v: unknown): string | undefined {
  if (typeof v !== 'string') return `${show(v)} is not a string`;
  if (v.length > 253) return `${show(v)} is longer than 253 characters (RFC 1123 subdomain)`;
  if (!DNS1123_SUBDOMAIN.test(v)) return `${show(v)} is not an RFC 1123 subdomain (lower case labels of letters, digits and '-', separated by '.')`;
  return undefined;
}

/** IsDNS1035Label: Service names (ValidateServiceName), which must start with a letter. */
export function dns1035Label(v: unknown): string | undefined {
  if (typeof v !== 'string') return `${show(v)} is not a string`;
  if (v.length > 63) return `${show(v)} is longer than 63 characters (RFC 1035 label)`;
  if (!DNS1035_LABEL.test(v)) return `${show(v)} is not an RFC 1035 label (lower case letters, digits and '-', starting with a letter and ending with a letter or digit)`;
  return undefined;
}

/** IsValidPortName (IANA_SVC_NAME): a named targetPort and a container port's name. */
export function ianaServiceName(v: unknown): string | undefined {
  if (typeof v !== 'string') return `${show(v)} is not a string`;
  if (v.length < 1 || v.length > 15) return `${show(v)} is not 1-15 characters (IANA service name)`;
  if (!IANA_SVC_NAME.test(v)) return `${show(v)} may hold only lower case letters, digits and '-' (IANA service name)`;
  if (!/[a-z]/.test(v)) return `${show(v)} must contain a letter (IANA service name)`;
  if (v.includes('--')) return `${show(v)} must not contain '--' (IANA service name)`;
  if (v.startsWith('-') || v.endsWith('-')) return `${show(v)} must not start or end with '-' (IANA service name)`;
  return undefined;
}

/** IsValidLabelValue. */
export function labelValue(v: unknown): string | undefined {
  if (typeof v !== 'string') return `${show(v)} is not a string`;
  if (v.length > 63) return `${show(v)} is longer than 63 characters (label value)`;
  if (!LABEL_VALUE.test(v)) return `${show(v)} is not a label value (letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`;
  return undefined;
}
