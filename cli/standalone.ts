// What every standalone service command (`linewatch rules`, `historian`, `gateway`) does around
// its service: connect to the broker, start, and stop in order on SIGINT/SIGTERM.
import { MqttBus, type MqttBusOptions } from '../bus/index.js';
import { clientIdFor } from '../contracts/client-id.js';
import type { Service } from '../lib/service.js';
import { UserError } from './errors.js';
import { onShutdown } from './shutdown.js';

/** The MQTT password from --password, else $LINEWATCH_MQTT_PASSWORD (kept out of `ps`). */
export function mqttPassword(flag: string | undefined): string | undefined {
  return flag ?? process.env.LINEWATCH_MQTT_PASSWORD;
}

/**
 * The MQTT client id of a service: derived from its account, since the broker lets an account
 * use only its username or USERNAME:SUFFIX (docs/broker.md#client-ids); `anonymous` without an
 * account (a broker in open mode).
 */
export function serviceClientId(username: string | undefined, anonymous: string, suffix?: string): string {
  return username ? clientIdFor(username, suffix) : anonymous;
}

/** Connects to `url`; a broker that does not answer (or refuses us) is the user's to fix. */
export async function connectBus(url: string, options: MqttBusOptions, hint?: string): Promise<MqttBus> {
  try {
    return await MqttBus.connect(url, options);
  } catch (err) {
    throw new UserError(hint ? `${(err as Error).message}; ${hint}` : (err as Error).message);
  }
}

/** Starts `service` (closing `bus` if it cannot), then stops the service and the bus on a signal. */
export async function runUntilSignal(service: Service, bus: MqttBus, beforeStop?: () => void): Promise<void> {
  try {
    await service.start();
  } catch (err) {
    await bus.close();
    throw new UserError((err as Error).message);
  }
  onShutdown(async () => {
    beforeStop?.();
    await service.stop();
    await bus.close();
  });
}
