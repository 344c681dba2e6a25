// `npm run bench`: runs each area's benchmark in turn and writes BENCHMARKS.md.
// Pass area names to run only those: `npm run bench -- broker rules`.
import { Report } from './report.js';
import { run as dashboardBench } from './dashboard.js';
import { run as brokerBench } from './broker.js';
import { run as gatewayBench } from './gateway.js';
import { run as simulatorsBench } from './simulators.js';
import { run as rulesBench } from './rules.js';
import { run as historianBench } from './historian.js';
import { run as backtestBench } from './backtest.js';
import { run as persistenceBench } from './persistence.js';
import { run as clusterBench } from './cluster.js';

type Area = { name: string; run: (report: Report) => Promise<void> };

// Each area lives in bench/<name>.ts and exports `run(report)`.
const areas: Area[] = [{ name: 'broker', run: brokerBench }, { name: 'dashboard', run: dashboardBench }, { name: 'gateway', run: gatewayBench }, { name: 'simulators', run: simulatorsBench }, { name: 'rules', run: rulesBench }, { name: 'historian', run: historianBench }, { name: 'persistence', run: persistenceBench }, { name: 'cluster', run: clusterBench }, { name: 'backtest', run: backtestBench }];

const only = process.argv.slice(2);
const report = new Report();
for (const area of areas) {
  if (only.length > 0 && !only.includes(area.name)) continue;
  console.log(`\n=== ${area.name} ===`);
  await area.run(report);
}
report.write();
