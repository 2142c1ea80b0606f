import { describe, expect, it } from 'vitest';
import { applyRule, type NameMatch, type RewriteRule } from './rewrite.js';

const rule = (match: NameMatch, from: string, to: string): RewriteRule => ({ match, from, to, next: 'stop', answerAuto: false, answerNames: [], answerValues: [] });

describe('rewrite name rules', () => {
  it('match exactly, by prefix, suffix, substring and regex with groups', () => {
    expect(applyRule(rule('exact', 'db.corp', 'db.prod.svc.cluster.local'), 'db.corp')).toBe('db.prod.svc.cluster.local');
    expect(applyRule(rule('exact', 'db.corp', 'x'), 'a.db.corp')).toBeUndefined();
    expect(applyRule(rule('prefix', 'old-', 'new-'), 'old-web.example')).toBe('new-web.example');
    expect(applyRule(rule('suffix', '.legacy.test', '.example.test'), 'www.legacy.test')).toBe('www.example.test');
    expect(applyRule(rule('substring', 'staging', 'prod'), 'api.staging.example')).toBe('api.prod.example');
    // A regex sees the name with its final dot, as CoreDNS's does.
    expect(applyRule(rule('regex', '^(.*)\\.svc\\.example\\.org\\.$', '{1}.svc.cluster.local'), 'web.prod.svc.example.org')).toBe('web.prod.svc.cluster.local');
    expect(applyRule(rule('regex', '^(.*)\\.svc\\.example\\.org\\.$', '{1}'), 'web.example.org')).toBeUndefined();
  });
});
