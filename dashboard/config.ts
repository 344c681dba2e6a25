// The `dashboard:` section of linewatch.yaml.
import { z } from 'zod';

export const dashboardConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  token: z.string().nullable().default(null).describe('required when host is not loopback'),
});
export type DashboardConfig = z.infer<typeof dashboardConfigSchema>;
