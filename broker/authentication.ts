// Who may connect — Aedes's preConnect and authenticate hooks: the client id rules, the accounts
// of the devices file, the login guard against password guessing — and the ACL rules each
// authenticated client then has (none in open mode: anything goes). See docs/broker.md.
import type { AedesOptions, AuthenticateError, Client } from 'aedes';
import { CLIENT_ID_SEPARATOR, isClientIdOf } from '../contracts/client-id.js';
import { logger } from '../lib/log.js';
import type { LogLimiter } from '../lib/log-limit.js';
import type { AccountStore } from './account-store.js';
import type { Role } from './accounts.js';
import { rulesFor, type RoleTable } from './acl.js';
import { addressOf, remoteOf } from './client-remote.js';
import type { LoginAttempt, LoginGuard } from './login-guard.js';
import type { BrokerCounters } from './stats.js';

const log = logger('broker');

export type ClientRules = ReturnType<typeof rulesFor>;
type Authenticate = NonNullable<AedesOptions['authenticate']>;
type Done = Parameters<Authenticate>[3];

export interface AuthenticationParts {
  /** Undefined in open mode. */
  readonly accounts: AccountStore | undefined;
  /** The grants of each role (broker/acl.ts). */
  readonly roles: RoleTable;
  readonly loginGuard: LoginGuard;
  readonly counters: BrokerCounters;
  /** A bounded number of lines per kind and interval for what a client can cause per attempt. */
  readonly limitedLog: LogLimiter;
}

function authError(message: string, returnCode: 2 | 3 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export class Authentication {
  /** The ACL rules of each authenticated client, shared per account. */
  private readonly sessions = new WeakMap<Client, ClientRules>();
  private readonly emptyIdPersistent = new WeakSet<Client>();
  /** Empty client id, clean session: Aedes makes up a unique one. */
  private readonly assignedId = new WeakSet<Client>();
  /** One rules object per account, shared by all its connections (memory per idle connection). */
  private readonly rulesCache = new Map<string, ClientRules>();

  constructor(private readonly parts: AuthenticationParts) {}

  readonly preConnect: NonNullable<AedesOptions['preConnect']> = (client, packet, callback) => {
    // MQTT-3.1.3-8: an empty client id requires a clean session; Aedes 1.2.0 accepts it (aedes#1095).
    if (packet.clientId === '' && packet.clean === false) this.emptyIdPersistent.add(client);
    else if (packet.clientId === '') this.assignedId.add(client);
    callback(null, true);
  };

  readonly authenticate: Authenticate = (client, username, password, done) => {
    const { accounts, counters, limitedLog } = this.parts;
    if (this.emptyIdPersistent.has(client)) {
      counters.reject('client_id');
      return done(authError('a client with an empty client id must connect with clean session on (MQTT-3.1.3-8)', 2), false);
    }
    if (!accounts) return done(null, true); // open mode: no session, no rules
    if (username === undefined || password === undefined) {
      counters.reject('not_authorized');
      limitedLog.write('info', 'anonymous', { clientId: client.id }, 'refused an anonymous client; add an account with `linewatch devices add`');
      return done(authError('anonymous clients are not allowed', 5), false);
    }
    // A client id belongs to one account (contracts/client-id.ts): nobody takes over another's session.
    if (!this.assignedId.has(client) && !isClientIdOf(username, client.id)) {
      counters.reject('client_id_denied');
      limitedLog.write('warn', 'client_id_denied', { clientId: client.id, username, remote: remoteOf(client) }, `refused a client id that does not belong to its account: use "${username}" or "${username}:<suffix>"`);
      return done(authError(`client id "${client.id}" does not belong to ${username}`, 2), false);
    }
    const remote = remoteOf(client);
    const admission = this.parts.loginGuard.admit(addressOf(remote), username);
    if (!admission.admitted) {
      counters.reject('login_backoff');
      limitedLog.write('warn', 'login_backoff', { clientId: client.id, username, remote, retryInMs: admission.retryInMs, heldBackBy: admission.heldBackBy }, 'refused a login without checking the password: too many failed logins for this address and username, this account or this address (broker.loginBackoff)');
      return done(authError('too many failed logins; try again later', 5), false);
    }
    this.checkPassword(accounts, client, username, password.toString('utf8'), admission.attempt, done);
  };

  /** The ACL rules of an authenticated client; undefined in open mode. */
  rulesOf(client: Client): ClientRules | undefined {
    return this.sessions.get(client);
  }

  /** A client left: its account was at this address until now (the login guard's known addresses); the client id names the account. */
  left(client: Client): void {
    if (this.sessions.has(client) && !this.assignedId.has(client)) this.parts.loginGuard.seen(addressOf(remoteOf(client)), client.id.split(CLIENT_ID_SEPARATOR, 1)[0]!);
  }

  /** scrypt runs so far. */
  get passwordChecks(): number {
    return this.parts.accounts?.verifications ?? 0;
  }

  private checkPassword(accounts: AccountStore, client: Client, username: string, password: string, attempt: LoginAttempt, done: Done): void {
    const { loginGuard, counters, limitedLog } = this.parts;
    accounts.verify(username, password).then(
      (account) => {
        if (!account) {
          loginGuard.failed(attempt);
          counters.reject('bad_credentials');
          limitedLog.write('info', 'bad_credentials', { clientId: client.id, username, remote: remoteOf(client) }, 'refused a client: unknown user or wrong password');
          return done(authError('bad user name or password', 4), false);
        }
        loginGuard.passed(attempt);
        this.sessions.set(client, this.sharedRules(account.role, username));
        done(null, true);
      },
      (err: unknown) => {
        loginGuard.abandoned(attempt);
        log.error({ err }, 'cannot read the devices file; refusing the client');
        done(authError('server unavailable', 3), false);
      },
    );
  }

  private sharedRules(role: Role, username: string): ClientRules {
    const key = `${role}\u0000${username}`;
    let rules = this.rulesCache.get(key);
    if (!rules) this.rulesCache.set(key, (rules = rulesFor(this.parts.roles, role, username)));
    return rules;
  }
}
