// How simulated devices reach the world. The model knows nothing of these; LineSimulator hands
// each device's messages to its transport and commands back to the model.
//   PerDeviceMqtt — one MQTT connection per device, its own account, a will on its status topic
//   SharedMqtt    — a few connections of a `gateway`-role account speaking for many devices
//   BusTransport  — an in-process Bus (e.g. `linewatch up` on the embedded broker)
//   SparkplugEdge — the line as one Sparkplug B edge node (mqtt.mode 'sparkplug')
//   SerialDevices — legacy devices writing codec frames to a serial port (a PTY end)
//   ModbusTcpDevices — devices answering Modbus TCP polls on a TCP port
export type { CommandSink, Credentials, DeviceTransport, TransportCounters } from './device-transport.js';
export { PerDeviceMqtt } from './mqtt-per-device.js';
export { SharedMqtt } from './mqtt-shared.js';
export { BusTransport } from './bus.js';
export { SparkplugEdge, SIMULATED_EDGE } from './sparkplug.js';
export { SerialDevices, type DeviceReader, type SerialDeviceConfig } from './serial.js';
export { ModbusTcpDevices, type ModbusTcpDeviceConfig } from './modbus-tcp.js';
