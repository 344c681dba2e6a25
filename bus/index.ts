export * from './bus.js';
export { MqttBus, type MqttBusOptions } from './mqtt.js';
export { untilConnected } from './mqtt-connect.js';
