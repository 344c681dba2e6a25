// linewatch.yaml: one file, one schema, each service owning its own section — the sections are
// the config schemas of the service modules in config/services.ts.
import { z, type ZodType } from 'zod';
import { SERVICE_MODULES } from './services.js';

type Modules = (typeof SERVICE_MODULES)[number];
type SectionOf<M> = M extends { configSchema: ZodType<infer Section> } ? Section : never;
type Sections = { [M in Modules as M['name']]: SectionOf<M> };

const sectionSchemas = Object.fromEntries(SERVICE_MODULES.map((module) => [module.name, (module.configSchema as ZodType<unknown>).prefault({})]));

export const configSchema = z.strictObject({
  dataDir: z.string().default('.linewatch').describe('where state, spools and the managed influxd live'),
  ...sectionSchemas,
}) as unknown as ZodType<{ dataDir: string } & Sections, unknown>;
export type LinewatchConfig = z.infer<typeof configSchema>;
