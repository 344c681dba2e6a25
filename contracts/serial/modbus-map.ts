// The Modbus register map (RTU and TCP alike): the wire contract between a device polled over Modbus and the
// gateway that polls it — which holding/input registers carry which reading (scale, signed),
// which register indexes the device state, and which registers a command writes. The gateway
// reads it from its config (`gateway.ports[].modbus`); a simulated Modbus device serves one.
import { z } from 'zod';
import { DEVICE_STATES } from '../index.js';

const REGISTER_TABLES = ['holding', 'input'] as const;
export type RegisterTable = (typeof REGISTER_TABLES)[number];

export const modbusRegisterSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/).describe('telemetry value name'),
  table: z.enum(REGISTER_TABLES).default('holding'),
  address: z.number().int().min(0).max(65_535),
  /** The published value is raw / scale (a register holding tenths has scale 10). */
  scale: z.number().positive().default(1),
  signed: z.boolean().default(false),
});

const writeSchema = z.strictObject({ address: z.number().int().min(0).max(65_535), value: z.number().int().min(0).max(65_535) });

export const modbusMapSchema = z.strictObject({
  unitId: z.number().int().min(1).max(247).default(1),
  pollIntervalMs: z.number().int().min(50).default(1000),
  timeoutMs: z.number().int().min(50).default(500),
  /** Failed polls in a row (a timeout, a closed port or connection) after which the gateway publishes the device's status `offline`; `online` again at its next answer. */
  offlineAfterFailures: z.number().int().min(1).max(1000).default(3),
  registers: z.array(modbusRegisterSchema).min(1),
  /** A register whose value indexes `states` (e.g. 0 = RUNNING, 1 = IDLE, …). */
  stateRegister: z
    .strictObject({
      table: z.enum(REGISTER_TABLES).default('holding'),
      address: z.number().int().min(0).max(65_535),
      states: z.array(z.enum(DEVICE_STATES)).min(1),
    })
    .optional(),
  /** Holding registers written for commands; an action without an entry is rejected. */
  commands: z
    .strictObject({
      set_speed: z.strictObject({ address: z.number().int().min(0).max(65_535), scale: z.number().positive().default(1) }).optional(),
      start: writeSchema.optional(),
      stop: writeSchema.optional(),
      reset_fault: writeSchema.optional(),
    })
    .default({}),
});
/** A map as validated (defaults filled in): what the gateway polls with. */
export type ModbusMap = z.infer<typeof modbusMapSchema>;
/** A map as written in a config file or built by code (defaults may be left out). */
export type ModbusMapInput = z.input<typeof modbusMapSchema>;

/** How one register carries one reading. */
export interface RegisterEncoding {
  scale: number;
  signed?: boolean;
}

/** Device side: a reading into the 16-bit register word (raw = round(value × scale), clamped to the register's range). */
export function encodeRegister(value: number, encoding: RegisterEncoding): number {
  const raw = Math.round(value * encoding.scale);
  return Math.max(encoding.signed ? -0x8000 : 0, Math.min(encoding.signed ? 0x7fff : 0xffff, raw)) & 0xffff;
}

/** Gateway side: a 16-bit register word into the reading (two's complement when signed, then / scale). */
export function decodeRegister(word: number, encoding: RegisterEncoding): number {
  const raw = encoding.signed && word > 0x7fff ? word - 0x10000 : word;
  return raw / encoding.scale;
}

/** Contiguous read ranges (≤ 125 registers each, the Modbus limit) covering every mapped register. */
export function readPlan(map: ModbusMap): { table: RegisterTable; start: number; length: number }[] {
  const wanted: { table: RegisterTable; address: number }[] = map.registers.map((r) => ({ table: r.table, address: r.address }));
  if (map.stateRegister) wanted.push({ table: map.stateRegister.table, address: map.stateRegister.address });
  const plan: { table: RegisterTable; start: number; length: number }[] = [];
  for (const table of REGISTER_TABLES) {
    const addresses = [...new Set(wanted.filter((w) => w.table === table).map((w) => w.address))].sort((a, b) => a - b);
    for (const a of addresses) {
      const last = plan.at(-1);
      if (last && last.table === table && a - last.start < 125) last.length = a - last.start + 1;
      else plan.push({ table, start: a, length: 1 });
    }
  }
  return plan;
}
