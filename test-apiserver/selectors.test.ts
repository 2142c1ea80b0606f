// Label and field selectors, as kubectl -l and --field-selector send them.
import { describe, expect, it } from 'vitest';
import { fieldSelector, labelSelector } from './selectors.js';

const obj = (name: string, labels: Record<string, string>, namespace = 'demo') => ({ metadata: { name, namespace, labels } });
const objs = [obj('a', { app: 'web', tier: 'front' }), obj('b', { app: 'web' }), obj('c', { app: 'db', tier: 'back' }, 'other'), obj('d', {})];
const names = (sel: (o: any) => boolean) => objs.filter(sel).map((o) => o.metadata.name);

describe('selectors', () => {
  it('selects by label equality, inequality, existence and sets', () => {
    expect(names(labelSelector('app=web'))).toEqual(['a', 'b']);
    expect(names(labelSelector('app==web,tier=front'))).toEqual(['a']);
    expect(names(labelSelector('app!=web'))).toEqual(['c', 'd']);
    expect(names(labelSelector('tier'))).toEqual(['a', 'c']);
    expect(names(labelSelector('!tier'))).toEqual(['b', 'd']);
    expect(names(labelSelector('tier in (front, back)'))).toEqual(['a', 'c']);
    expect(names(labelSelector('app notin (web),tier'))).toEqual(['c']);
    expect(names(labelSelector(''))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('selects by metadata.name and metadata.namespace, and refuses other fields and bad syntax', () => {
    expect(names(fieldSelector('metadata.name=b'))).toEqual(['b']);
    expect(names(fieldSelector('metadata.namespace!=demo'))).toEqual(['c']);
    expect(() => fieldSelector('spec.clusterIP=10.96.0.1')).toThrow(/field label not supported: spec\.clusterIP/);
    expect(() => labelSelector('app in web')).toThrow(/labelSelector "app in web": cannot parse/);
    expect(() => labelSelector('=x')).toThrow(/cannot parse/);
  });
});
