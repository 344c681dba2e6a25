// The token (from ?token= in the page's URL, kept for the tab's session) and a fetch wrapper
// that sends it and turns the server's JSON errors into exceptions with its message.
/* global fetch, sessionStorage, URLSearchParams */

const fromUrl = new URLSearchParams(window.location.search).get('token');
if (fromUrl) sessionStorage.setItem('linewatch-token', fromUrl);
const token = sessionStorage.getItem('linewatch-token');

/** `path` with ?token= added when we have one (EventSource cannot send headers). */
export function withToken(path) {
  if (!token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

export async function api(path, init = {}) {
  const headers = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const res = await fetch(path, { ...init, headers: { ...headers, ...init.headers } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}
