// One will per client across nodes (docs/broker.md#wills-across-nodes). The rule: a client that
// connects — to any node — replaces every will it had stored, under every broker id; a stored will
// is published only for a client that has not connected again since.
//
// Why here: Aedes, as a client connects, calls `persistence.delWill(client)` to "delete any
// existing will messages from persistence" (lib/handlers/connect.js, storeWill) with its Client,
// which has no `brokerId`. The memory store keys wills by client id alone, so that deletes the
// will; aedes-persistence-redis keys them `will:<broker id>:<client id>` and deletes
// `will:undefined:<client id>`: nothing. After a failover the client's will stays under the dead
// node's id, and the surviving node publishes it once it judges that node dead (`streamWill`),
// seconds after the client came back — a device whose will is its retained `offline` status then
// shows offline while it is online. The same happens on one node restarted with a Redis store (its
// broker id is new at each start).
//
// So a `delWill` without a `brokerId` deletes the client's wills under every broker id, in one
// Lua script on Redis: it scans the `will` list once, as the LREM that aedes-persistence-redis
// already runs on every putWill does. A `delWill` with a `brokerId` (a disconnect, a will just
// published) is the package's.
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';

const require = createRequire(import.meta.url);

/** The aedes-persistence-redis major version whose will keys this file knows. */
const KNOWN_MAJOR = '12';

/** The list of all will keys (aedes-persistence-redis 12: asyncPersistence.js, WILLSKEY). */
const WILLS_LIST = 'will';

/**
 * KEYS[1]: the list of will keys; ARGV[1]: `:<encoded client id>`, the end of each of that
 * client's keys (an encoded client id has no ':', so no other client's key ends so). Removes each
 * such key from the list and deletes it; returns their values.
 */
const DELETE_CLIENT_WILLS = `
local suffix = ARGV[1]
local values = {}
for _, key in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.sub(key, -string.len(suffix)) == suffix then
    redis.call('LREM', KEYS[1], 0, key)
    local value = redis.call('GET', key)
    if value then table.insert(values, value) end
    redis.call('DEL', key)
  end
end
return values
`;

interface WillStore {
  delWill(client: { id: string; brokerId?: string }): Promise<unknown>;
}

interface Msgpack {
  decode(buffer: Buffer): unknown;
}

/** Makes `store` (aedes-persistence-redis 12's async class, on `connection`) keep one will per client across broker ids. */
export function oneWillPerClient(store: WillStore, connection: Redis): void {
  const { version } = require('aedes-persistence-redis/package.json') as { version: string };
  if (version.split('.')[0] !== KNOWN_MAJOR || typeof store.delWill !== 'function') {
    // Fail at start, loudly, rather than run with stale wills (or delete the wrong keys) after an upgrade.
    throw new Error(`aedes-persistence-redis ${version} is not the ${KNOWN_MAJOR}.x whose will keys (will:<broker id>:<client id>) broker/persistence/redis-wills.ts knows: revisit it for the new version`);
  }
  // The package's own encoder (a dependency of it, not of linewatch).
  const msgpack = createRequire(require.resolve('aedes-persistence-redis'))('msgpack-lite') as Msgpack;
  const deleteOne = store.delWill.bind(store);
  store.delWill = async (client) => {
    if (client.brokerId !== undefined) return deleteOne(client);
    const values = (await connection.callBuffer('EVAL', DELETE_CLIENT_WILLS, 1, WILLS_LIST, `:${encodeURIComponent(client.id)}`)) as Buffer[];
    // Aedes ignores what this returns; the package returns the deleted will, so this returns one of them.
    return values.length > 0 ? msgpack.decode(values[0]!) : null;
  };
}
