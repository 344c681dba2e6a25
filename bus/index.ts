export * from './bus.js';
export { InProcessBus, NO_REDELIVERY } from './in-process.js';
export { MqttBus, type MqttBusOptions } from './mqtt.js';
export { untilConnected } from './mqtt-connect.js';
