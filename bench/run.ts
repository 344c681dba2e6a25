// `npm run bench`: runs each area's benchmark in turn and writes BENCHMARKS.md.
// Pass area names to run only those: `npm run bench -- broker rules`.
import { Report } from './report.js';
import { run as dashboardBench } from './dashboard.js';

type Area = { name: string; run: (report: Report) => Promise<void> };

// Each area lives in bench/<name>.ts and exports `run(report)`.
const areas: Area[] = [{ name: 'dashboard', run: dashboardBench }];

const only = process.argv.slice(2);
const report = new Report();
for (const area of areas) {
  if (only.length > 0 && !only.includes(area.name)) continue;
  console.log(`\n=== ${area.name} ===`);
  await area.run(report);
}
report.write();
