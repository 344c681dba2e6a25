// lib/influx-url.ts: what a URL says reaches node-influx whole (scheme, port, path prefix, credentials).
import { describe, expect, it } from 'vitest';
import { connectInflux, parseInfluxUrl, redactUrl } from '../../lib/influx-url.js';

describe('parseInfluxUrl', () => {
  it('keeps https, the port and a path prefix with or without the trailing slash', () => {
    for (const url of ['https://db.example:8443/influx/', 'https://db.example:8443/influx']) {
      expect(parseInfluxUrl(url)).toEqual({ protocol: 'https', hostname: 'db.example', port: 8443, path: '/influx', username: undefined, password: undefined, baseUrl: 'https://db.example:8443/influx' });
    }
  });

  it('defaults the port to 80 for http and 443 for https, and the root path to ""', () => {
    expect(parseInfluxUrl('http://host/')).toMatchObject({ port: 80, path: '', baseUrl: 'http://host:80' });
    expect(parseInfluxUrl('https://host')).toMatchObject({ port: 443, path: '', baseUrl: 'https://host:443' });
  });

  it('takes percent-decoded credentials from the URL, keeps them out of baseUrl, and lets explicit ones win', () => {
    expect(parseInfluxUrl('http://us%40er:p%3Ass@host:8086')).toMatchObject({ username: 'us@er', password: 'p:ss', baseUrl: 'http://host:8086' });
    expect(parseInfluxUrl('http://user:pass@host:8086', { username: 'other', password: 'secret' })).toMatchObject({ username: 'other', password: 'secret' });
  });

  it('refuses what is not an http(s) URL, saying what it needs', () => {
    expect(() => parseInfluxUrl('ftp://127.0.0.1:8086')).toThrow(/must start with http:\/\/ or https:\/\//);
    expect(() => parseInfluxUrl('not a url')).toThrow(/"not a url" is not a URL; give a base URL like http:\/\/127\.0\.0\.1:8086/);
  });
});

describe('connectInflux', () => {
  it('sends basic auth only when there are credentials', () => {
    const withCredentials = connectInflux({ url: 'http://user:pass@127.0.0.1:8086', database: 'db' });
    const without = connectInflux({ url: 'http://127.0.0.1:8086', database: 'db' });
    try {
      expect(withCredentials.auth).toBe('user:pass');
      expect(without.auth).toBeUndefined();
    } finally {
      withCredentials.close();
      without.close();
    }
  });

  it('redacts a password in a URL for logs, and leaves a URL without one as it is', () => {
    expect(redactUrl('http://writer:s3cret@proxy:8086/influx/')).toBe('http://writer:***@proxy:8086/influx/');
    expect(redactUrl('http://127.0.0.1:8086')).toBe('http://127.0.0.1:8086');
  });
});
