/**
 * How a worker hands its result files to egress.
 *
 * - `LocalHandoff` (the default, and any process that is both worker and sender): straight into this
 *   process's durable outbox, in one SQLite transaction.
 * - `RedisHandoff` (`src/egress/redis-handoff.ts`; a worker process without the sender role on the
 *   shared Redis queue): the file references go to the shared `egress` BullMQ queue, from which any
 *   sender process commits them into its own outbox and sends them.
 *
 * The processor awaits `handOff()` before the study job is recorded as done, so results are never
 * "done" but nowhere: if the hand-off fails, the job fails and is retried.
 */
import type { OutboxFile } from './outbox';
import type { EgressService } from './egress';

/** Files that go to the same destinations. */
export interface ResultGroup {
  files: OutboxFile[];
  destinations: string[];
}

export interface HandoffMeta {
  /** The study job the results belong to. */
  job: number;
  studyUid: string;
}

export interface ResultHandoff {
  /** 'local' outbox or 'shared' queue: for the outcome and the logs. */
  readonly kind: 'local' | 'shared';
  /** Durable when it resolves: in the local outbox, or acknowledged by Redis. */
  handOff(groups: ResultGroup[], meta: HandoffMeta): Promise<void>;
}

export class LocalHandoff implements ResultHandoff {
  readonly kind = 'local' as const;
  constructor(private readonly egress: EgressService) {}

  async handOff(groups: ResultGroup[]): Promise<void> {
    this.egress.enqueueGroups(groups.filter((g) => g.files.length && g.destinations.length));
  }
}
