// The serial wire contracts between a device and the gateway, used by both sides (gateway/ and
// the simulated serial devices in simulators/): line framing, the line codecs (ndjson, text)
// and the Modbus RTU register map.
export * from './types.js';
export { LineFramer, type FrameDropReason } from './framer.js';
export { ndjsonCodec } from './ndjson.js';
export { textCodec, xorChecksum, sentence, parseSentence } from './text.js';
export { modbusMapSchema, modbusRegisterSchema, encodeRegister, decodeRegister, readPlan, type ModbusMap, type ModbusMapInput, type RegisterEncoding, type RegisterTable } from './modbus-map.js';
import { ndjsonCodec } from './ndjson.js';
import { textCodec } from './text.js';
import type { LineCodec } from './types.js';

export const lineCodecs: Record<'ndjson' | 'text', LineCodec> = { ndjson: ndjsonCodec, text: textCodec };
