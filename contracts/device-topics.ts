// What a device publishes and subscribes, as topic filters relative to its own account
// (LINE/DEVICE): the device side of the contract, declared once for every service that stands
// for devices (the simulators per device, the gateway for the devices behind it).
import type { TopicUse } from '../lib/service-module.js';
import { DELIVERY, ROOT } from './topics.js';

/** `{account}` is the device's username, LINE/DEVICE; `+/+` for a service that speaks for many devices. */
export function devicePublishes(scope: '{account}' | '+/+'): TopicUse[] {
  return [
    { filter: `${ROOT}/${scope}/state`, ...DELIVERY.state, why: 'its state changes (retained: its current state)' },
    { filter: `${ROOT}/${scope}/telemetry`, ...DELIVERY.telemetry, why: 'its readings, every period' },
    { filter: `${ROOT}/${scope}/status`, ...DELIVERY.status, why: 'online/offline (retained; offline is its will)' },
    { filter: `${ROOT}/${scope}/cmd/ack`, ...DELIVERY.ack, why: 'what it did with a command' },
  ];
}

export function deviceSubscribes(scope: '{account}' | '+/+'): TopicUse[] {
  return [{ filter: `${ROOT}/${scope}/cmd`, qos: DELIVERY.cmd.qos, why: 'the commands sent to it' }];
}
