// linewatch.yaml: one file, one schema, each service owning its own section.
import { z } from 'zod';
import { brokerConfigSchema } from '../broker/config.js';
import { dashboardConfigSchema } from '../dashboard/config.js';
import { gatewayConfigSchema } from '../gateway/config.js';
import { historianConfigSchema } from '../historian/config.js';
import { oeeConfigSchema } from '../oee/config.js';
import { rulesConfigSchema } from '../rules/config.js';
import { simulateConfigSchema } from '../simulators/config.js';

export const configSchema = z.strictObject({
  dataDir: z.string().default('.linewatch').describe('where state, spools and the managed influxd live'),
  broker: brokerConfigSchema.prefault({}),
  gateway: gatewayConfigSchema.prefault({}),
  simulate: simulateConfigSchema.prefault({}),
  rules: rulesConfigSchema.prefault({}),
  historian: historianConfigSchema.prefault({}),
  oee: oeeConfigSchema.prefault({}),
  dashboard: dashboardConfigSchema.prefault({}),
});
export type LinewatchConfig = z.infer<typeof configSchema>;
