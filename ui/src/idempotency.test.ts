import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import { SubmitKeys, randomKey } from './idempotency';

const counter = () => {
  let n = 0;
  return () => `key-${++n}`;
};

describe('SubmitKeys', () => {
  it('reuses the key when the same request is tried again after no answer or a server error', () => {
    const keys = new SubmitKeys(counter());
    const request = { prompt: 'a red cube', quality_tier: 'standard' };
    expect(keys.keyFor(request)).toBe('key-1');
    keys.settled(new ApiError('unreachable', 0, 'network'));
    expect(keys.keyFor({ ...request })).toBe('key-1');
    keys.settled(new ApiError('bad gateway', 502, null));
    expect(keys.keyFor(request)).toBe('key-1');
  });

  it('starts a new key after a success, a refusal or for another request', () => {
    const keys = new SubmitKeys(counter());
    expect(keys.keyFor({ prompt: 'a' })).toBe('key-1');
    keys.settled();
    expect(keys.keyFor({ prompt: 'a' })).toBe('key-2');
    keys.settled(new ApiError('invalid', 422, 'invalid_input'));
    expect(keys.keyFor({ prompt: 'a' })).toBe('key-3');
    keys.settled(new ApiError('unreachable', 0, 'network'));
    expect(keys.keyFor({ prompt: 'b' })).toBe('key-4');
  });

  it('makes 32 hex digit keys', () => {
    expect(randomKey()).toMatch(/^[0-9a-f]{32}$/);
    expect(randomKey()).not.toBe(randomKey());
  });
});
