// A line's flow order (the `lines:` block of the rules folder: which station feeds which) and
// what expressions ask of a line through it (docs/rules.md#rules-for-a-whole-line):
// `upstream(device)`, `downstream(device)` and `device("id")`, another device's latest state and
// readings from the device table.
import { deviceScope, type DeviceTable } from './device-table.js';
import { UNKNOWN, type LineView, type Scope } from './expr.js';

/** The flow of one line: device ids, each feeding the next. */
export type Flow = readonly string[];

export class LineFlows {
  /** Per line, each device of its flow with its position. */
  private readonly positions = new Map<string, Map<string, number>>();

  constructor(private readonly flows: ReadonlyMap<string, Flow>) {
    for (const [line, flow] of flows) this.positions.set(line, new Map(flow.map((device, i) => [device, i])));
  }

  static readonly NONE = new LineFlows(new Map());

  /** The neighbour of `device` `step` places along its line's flow (-1: upstream, +1: downstream); null past either end; UNKNOWN when it is in no flow. */
  neighbour(line: string, device: string, step: -1 | 1): string | null | typeof UNKNOWN {
    const at = this.positions.get(line)?.get(device);
    if (at === undefined) return UNKNOWN;
    return this.flows.get(line)![at + step] ?? null;
  }
}

/** What the expressions of a message on `line` read of that line. */
export function lineView(line: string, flows: LineFlows, devices: DeviceTable): LineView {
  return {
    upstream: (device) => flows.neighbour(line, device, -1),
    downstream: (device) => flows.neighbour(line, device, 1),
    device: (device): Scope | typeof UNKNOWN => {
      const record = devices.get(line, device);
      return record ? deviceScope(record) : UNKNOWN;
    },
  };
}

/** One line view per line, made once for the flows installed (the router replaces it on a reload). */
export class LineViews {
  private readonly views = new Map<string, LineView>();

  constructor(
    private readonly flows: LineFlows,
    private readonly devices: DeviceTable,
  ) {}

  of(line: string): LineView {
    let view = this.views.get(line);
    if (!view) {
      view = lineView(line, this.flows, this.devices);
      this.views.set(line, view);
    }
    return view;
  }
}
