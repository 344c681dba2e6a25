// An independent Sparkplug B edge node for tests: Eclipse Tahu's `sparkplug-client` (npm 3.2.4,
// its own MQTT.js 4), not our code. It publishes what a test tells it, remembers the NCMD/DCMD it
// gets, and answers a rebirth request with its births, as an edge node must.
//
// Two of its private fields are reached into, each guarded so a version that renames them fails
// loudly here: `seq` (to send out of order, which the library never does by itself) and
// `client.stream` (to cut the socket without DISCONNECT, so the broker publishes its will).
import sparkplugClient from 'sparkplug-client';
import type { UPayload } from 'sparkplug-client';
import type { TypeStr } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import { waitFor } from '../../lib/wait.js';

export interface EdgeMetric {
  name?: string;
  alias?: number;
  type: TypeStr;
  value: number | boolean | string;
}

export interface TestEdgeOptions {
  url: string;
  group: string;
  edge: string;
  password: string;
  /** The NBIRTH metrics (bdSeq is added by the library). */
  nodeMetrics?: EdgeMetric[];
  /** Device id → its DBIRTH metrics. */
  devices?: Record<string, EdgeMetric[]>;
}

type Client = ReturnType<typeof sparkplugClient.newClient>;

interface Internals {
  seq: number;
  client: { stream: { destroy(): void }; options: { reconnectPeriod: number } };
}

function internalsOf(client: Client): Internals {
  const internals = client as unknown as { seq?: unknown; client?: { stream?: { destroy?: unknown }; options?: { reconnectPeriod?: unknown } } };
  if (typeof internals.seq !== 'number' || typeof internals.client?.stream?.destroy !== 'function' || typeof internals.client.options?.reconnectPeriod !== 'number') {
    throw new Error('sparkplug-client no longer has the private seq / client.stream / client.options this harness uses (test/harness/sparkplug-edge.ts)');
  }
  return internals as unknown as Internals;
}

export class TestEdge {
  readonly client: Client;
  readonly ncmd: UPayload[] = [];
  readonly dcmd: { device: string; payload: UPayload }[] = [];
  births = 0;
  errors: Error[] = [];

  constructor(private readonly options: TestEdgeOptions) {
    this.client = sparkplugClient.newClient({
      serverUrl: options.url,
      username: `${options.group}/${options.edge}`,
      password: options.password,
      groupId: options.group,
      edgeNode: options.edge,
      clientId: `${options.group}/${options.edge}`,
      mqttOptions: { reconnectPeriod: 0 },
    });
    this.client.on('error', (err) => this.errors.push(err));
    this.client.on('birth', () => this.publishBirths());
    this.client.on('ncmd', (payload) => {
      this.ncmd.push(payload);
      if (payload.metrics?.some((metric) => metric.name === 'Node Control/Rebirth' && metric.value === true)) this.publishBirths();
    });
    this.client.on('dcmd', (device, payload) => this.dcmd.push({ device, payload }));
  }

  publishBirths(): void {
    this.client.publishNodeBirth({ timestamp: Date.now(), metrics: [...(this.options.nodeMetrics ?? [])] });
    for (const [device, metrics] of Object.entries(this.options.devices ?? {})) this.client.publishDeviceBirth(device, { timestamp: Date.now(), metrics });
    this.births++;
  }

  data(device: string, metrics: EdgeMetric[]): void {
    this.client.publishDeviceData(device, { timestamp: Date.now(), metrics });
  }

  /** The seq its next message will carry; set it to send out of order. */
  get seq(): number {
    return internalsOf(this.client).seq;
  }
  set seq(value: number) {
    internalsOf(this.client).seq = value;
  }

  /** Rebirth requests received so far. */
  rebirths(): number {
    return this.ncmd.filter((payload) => payload.metrics?.some((metric) => metric.name === 'Node Control/Rebirth')).length;
  }

  async connected(): Promise<void> {
    await waitFor(() => this.births > 0, 10_000, `edge node ${this.options.group}/${this.options.edge} to connect and publish its births`);
  }

  /** Cuts the socket without DISCONNECT: the broker publishes its will (NDEATH). */
  cut(): void {
    const internals = internalsOf(this.client);
    internals.client.options.reconnectPeriod = 0;
    internals.client.stream.destroy();
  }

  stop(): void {
    this.client.stop();
  }
}
