// Ranks a V8 CPU profile of a broker (LINEWATCH_BENCH_CPU_PROF, bench/broker.ts) by stage of a
// message's path — parse, authorize, validate, route, persist, deliver, write, … — and lists the
// functions with the most self time. Shares of the profile's busy time are robust to a loaded
// machine; multiplied by the bench's µs per delivered message they give µs per message by stage.
//   node dist/bench/profile-summary.js <file.cpuprofile> [µs per delivered message]
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  parent?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A sample belongs to the innermost frame on its stack whose file names a stage; frames of shared code (Node, natives, topic helpers) pass it up. */
const STAGES: { stage: string; files: RegExp }[] = [
  { stage: 'parse (mqtt-packet parser)', files: /mqtt-packet\/(parser|packet)\.js|node_modules\/bl\// },
  { stage: 'validate (decode, zod)', files: /\/zod\/|contracts\/(validate|decode|schemas|fast-validate)\.js|broker\/(publish-validation|decoded)\.js/ },
  { stage: 'authorize (ACL, hooks)', files: /broker\/(authorization|acl|authentication|drop-refused)\.js/ },
  { stage: 'persist (aedes-persistence)', files: /aedes-persistence|broker\/persistence\// },
  { stage: 'write (packet generation, socket writes)', files: /mqtt-packet\/(writeToStream|generate|numbers)\.js|aedes\/lib\/write\.js|broker\/write-batching\.js/ },
  { stage: 'deliver (Aedes client, dedupe)', files: /aedes\/lib\/client\.js|aedes-packet|broker\/dedupe\.js/ },
  { stage: 'route (aedes publish, mqemitter, qlobber)', files: /aedes\/aedes\.js|aedes\/lib\/handlers\/|mqemitter|qlobber|fastparallel|fastseries|fastfifo|reusify|broker\/safe-mq\.js/ },
  { stage: 'in-process bus', files: /broker\/(in-process-bus|refusals)\.js/ },
  { stage: 'read guards (backpressure, packet size)', files: /broker\/(backpressure|packet-guard|connection-guards)\.js/ },
  { stage: 'bench consumer (not the broker)', files: /bench\/broker-(receiver|server)\.js/ },
  { stage: 'logging', files: /\/pino|lib\/log(-limit)?\.js/ },
  { stage: 'start-up (module loading)', files: /^node:internal\/modules\// },
];
const SPECIAL = new Map([
  ['(garbage collector)', 'garbage collection'],
  ['(program)', 'V8/native, unattributed'],
  ['(idle)', 'idle'],
]);
/** Helpers several stages call (topic matching: the ACL and the decoder; Aedes's debug logging): their time goes to their caller's stage. */
const SHARED = /contracts\/topics\.js|node_modules\/(debug|ms)\//;
/** Not a message's cost: reported apart and left out of the shares, like idle time. */
const APART = ['idle', 'start-up (module loading)'];
/** Code of no stage above: named by its package (or linewatch file), so the rest stays visible. */
function otherOwner(url: string): string | undefined {
  if (SHARED.test(url)) return undefined; // its caller's stage
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg) return `other: ${pkg}`;
  const own = /\/dist\/(.+)\.js$/.exec(url)?.[1];
  return own ? `other: linewatch ${own}` : undefined;
}
const UNOWNED = 'Node: sockets, streams, event loop';

export interface ProfileSummary {
  /** Sampled time spent on anything but idling and module loading: the shares are of this. */
  busyMs: number;
  idleMs: number;
  startupMs: number;
  stages: { stage: string; ms: number; share: number }[];
  functions: { name: string; ms: number; share: number }[];
}

export function summarize(profile: CpuProfile, topFunctions = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const stageCache = new Map<number, string>();
  const stageOf = (id: number): string => {
    const cached = stageCache.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id)!;
    const special = SPECIAL.get(node.callFrame.functionName);
    let stage = special ?? STAGES.find((candidate) => candidate.files.test(node.callFrame.url))?.stage ?? otherOwner(node.callFrame.url);
    if (stage === undefined) {
      const parent = parentOf.get(id);
      stage = parent === undefined ? UNOWNED : stageOf(parent);
    }
    stageCache.set(id, stage);
    return stage;
  };
  const stageMs = new Map<string, number>();
  const functionMs = new Map<string, number>();
  for (let index = 0; index < profile.samples.length; index++) {
    const id = profile.samples[index]!;
    const ms = (profile.timeDeltas[index] ?? 0) / 1000;
    const stage = stageOf(id);
    stageMs.set(stage, (stageMs.get(stage) ?? 0) + ms);
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url ? ` ${url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '')}:${lineNumber + 1}` : '';
    const name = `${functionName || '(anonymous)'}${where}`;
    functionMs.set(name, (functionMs.get(name) ?? 0) + ms);
  }
  const idleMs = stageMs.get('idle') ?? 0;
  const startupMs = stageMs.get(APART[1]!) ?? 0;
  for (const apart of APART) stageMs.delete(apart);
  functionMs.delete('(idle)');
  const busyMs = [...stageMs.values()].reduce((sum, ms) => sum + ms, 0);
  const ranked = (map: Map<string, number>): [string, number][] => [...map.entries()].sort((a, b) => b[1] - a[1]);
  return {
    busyMs,
    idleMs,
    startupMs,
    stages: ranked(stageMs).map(([stage, ms]) => ({ stage, ms, share: ms / busyMs })),
    functions: ranked(functionMs)
      .slice(0, topFunctions)
      .map(([name, ms]) => ({ name, ms, share: ms / busyMs })),
  };
}

const [file, perMessage] = process.argv.slice(2);
if (file) {
  const summary = summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const microsPerMessage = perMessage === undefined ? undefined : Number(perMessage);
  console.log(`busy ${summary.busyMs.toFixed(0)} ms (the shares are of this), module loading ${summary.startupMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`);
  console.log(`\n| stage | share of busy time |${microsPerMessage ? ' µs per message |' : ''}\n|---|---|${microsPerMessage ? '---|' : ''}`);
  for (const { stage, share } of summary.stages) console.log(`| ${stage} | ${(share * 100).toFixed(1)} % |${microsPerMessage ? ` ${(share * microsPerMessage).toFixed(1)} |` : ''}`);
  console.log('\n| function (self time) | share |\n|---|---|');
  for (const { name, share } of summary.functions) console.log(`| ${name} | ${(share * 100).toFixed(1)} % |`);
}
