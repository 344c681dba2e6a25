// What every broker store hands the broker: the Aedes persistence instance (aedes-persistence's async
// interface, which aedes 1.2.0 calls), plus what the broker needs to report and stop it. One store per
// file in this folder; `index.ts` picks one from `broker.persistence`.

/** The persistence object Aedes is given (`AedesOptions.persistence`, typed `any` upstream). */
export type AedesPersistence = NonNullable<unknown>;

export type PersistenceKind = 'memory' | 'disk' | 'redis';

export interface OpenedPersistence {
  readonly kind: PersistenceKind;
  /** The instance passed to Aedes as `persistence`. */
  readonly persistence: AedesPersistence;
  /** Where it keeps its data, for logs and health reasons (a directory, a redis URL, or 'memory'). */
  readonly location: string;
  /** Levels for /metrics (e.g. queued messages, store size); empty when the store has none. */
  gauges(): Record<string, number>;
  /** Closes the store after Aedes has closed; resolves when everything written is kept. */
  close(): Promise<void>;
}
