import { describe, expect, it } from 'vitest';
import { dns1035Label, dns1123Label, dns1123Subdomain, ianaServiceName, labelValue } from './validate.js';

// The cases are apimachinery's own (validation_test.go): what the API server accepts and refuses.
describe('apimachinery name rules', () => {
  it('RFC 1035 label (Service names): starts with a letter', () => {
    for (const ok of ['a', 'ab', 'a-1', 'abc-def', 'a'.repeat(63)]) expect(dns1035Label(ok), ok).toBeUndefined();
    for (const bad of ['', '1a', '-a', 'a-', 'A', 'a_b', 'a.b', 'a'.repeat(64), 'x" -j ACCEPT', 'x\n-I INPUT 1 -j ACCEPT', 'a b']) {
      expect(dns1035Label(bad), JSON.stringify(bad)).toMatch(/RFC 1035|longer/);
    }
    expect(dns1035Label(7)).toMatch(/not a string/);
  });

  it('RFC 1123 label (namespaces, port names): may start with a digit', () => {
    for (const ok of ['a', '0', '1a', 'a-1', '9'.repeat(63)]) expect(dns1123Label(ok), ok).toBeUndefined();
    for (const bad of ['', '-a', 'a-', 'A', 'a.b', 'a'.repeat(64), 'a"b', "a'b", 'a$b']) expect(dns1123Label(bad), bad).toBeDefined();
  });

  it('RFC 1123 subdomain (slices, nodes, pods): dotted labels up to 253', () => {
    for (const ok of ['a', 'a.b', 'node-1.example.com', `${'a'.repeat(63)}.${'b'.repeat(63)}`]) expect(dns1123Subdomain(ok), ok).toBeUndefined();
    for (const bad of ['', '.a', 'a.', 'a..b', 'A.b', 'a_b', 'a'.repeat(254), 'a;b']) expect(dns1123Subdomain(bad), bad).toBeDefined();
  });

  it('IANA service name (targetPort names): 1-15, a letter, no leading, trailing or double hyphen', () => {
    for (const ok of ['http', 'h2', 'a-b-c', '1a', 'x'.repeat(15)]) expect(ianaServiceName(ok), ok).toBeUndefined();
    for (const bad of ['', '123', '-http', 'http-', 'a--b', 'HTTP', 'x'.repeat(16), 'a b']) expect(ianaServiceName(bad), bad).toBeDefined();
  });

  it('label values: empty allowed, mixed case, _ and . inside', () => {
    for (const ok of ['', 'a', 'A_b.c-D', 'us-east-1a', 'x'.repeat(63)]) expect(labelValue(ok), ok).toBeUndefined();
    for (const bad of ['-a', 'a-', '_a', 'a b', 'a"b', 'a/b', 'x'.repeat(64)]) expect(labelValue(bad), bad).toBeDefined();
  });
});
