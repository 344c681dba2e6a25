// The dashboard as a linewatch service module (lib/service-module.ts). It serves its own
// /healthz and /metrics on its HTTP port, so the standalone runner adds no second server.
import { DELIVERY, topics } from '../contracts/topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { dashboardConfigSchema, type DashboardConfig } from './config.js';
import { DashboardServer, type DashboardServerOptions } from './server/index.js';

export const dashboardModule = {
  name: 'dashboard' as const,
  configSchema: dashboardConfigSchema,
  role: 'dashboard',
  topics: {
    publishes: [{ filter: topics.allAlarmRequests, ...DELIVERY.alarmSet, why: 'an operator acknowledging, shelving, unshelving or clearing an alarm (POST /api/alerts/*); the rules engine applies it and publishes the state' }],
    subscribes: [{ filter: topics.all, qos: 0, why: 'the live view: every device, command, alert and summary' }],
  },
  healthPort: 'own-server',
  create: (options) => new DashboardServer(options),
} satisfies ServiceModule<DashboardConfig, DashboardServerOptions>;
