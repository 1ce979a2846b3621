/**
 * Builds a StrokeNode with every stage this build has: the place where the processor (study →
 * pipelines → results → egress), the model registry, admin page and metrics are plugged in.
 * Tests use it too, so what they run is what `npm start` runs.
 */
import * as path from 'path';
import { Config } from './config/schema';
import { EgressService } from './egress/egress';
import { LocalHandoff, ResultHandoff } from './egress/handoff';
import type { RedisHandoff } from './egress/redis-handoff';
import { ModelRegistry } from './models/registry';
import { NODE_VERSION, StrokeNode } from './node';
import { createProcessor } from './pipelines/processor';
import { routeModels } from './pipelines/tasks';
import { mountAdmin } from './admin';
import { Housekeeping } from './jobs/housekeeping';

export interface BuiltNode extends StrokeNode {
  registry: ModelRegistry;
  egress: EgressService;
  /** Shared queue only: the hand-off of results between worker and sender processes. */
  sharedHandoff?: RedisHandoff;
}

export async function buildNode(config: Config): Promise<BuiltNode> {
  const node = new StrokeNode(config) as BuiltNode;
  const registry = new ModelRegistry({
    dir: path.resolve(config.inference.modelsDir),
    providers: config.inference.executionProviders,
    intraOpThreads: config.inference.intraOpThreads || undefined,
  });
  const egress = new EgressService({
    db: node.db,
    destinations: config.destinations,
    settings: config.egress,
    callingAeTitle: config.dimse.aeTitle,
  });
  node.registry = registry;
  node.egress = egress;
  // Only a worker runs models: receiver and sender processes do not spend memory on them.
  if (node.roles.worker) node.addService({ name: 'models', start: async () => void (await registry.loadAll()), stop: () => registry.close() });
  // The outbox is filled by the worker side; only a process with the sender role drains it.
  if (node.roles.sender) node.addService({ name: 'egress', start: () => egress.start(), stop: () => egress.stop() });
  // Results go to this process's outbox, except from a worker without the sender role on the shared
  // queue: those go through Redis to whichever sender process takes them (src/egress/redis-handoff.ts).
  let handoff: ResultHandoff = new LocalHandoff(egress);
  if (config.queue.backend === 'redis' && (node.roles.sender || node.roles.worker)) {
    // Loaded only when configured, like the Redis queue itself.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { RedisHandoff: Shared } = require('./egress/redis-handoff') as typeof import('./egress/redis-handoff');
    const shared = new Shared(config);
    node.sharedHandoff = shared;
    if (!node.roles.sender) handoff = shared;
    node.addService({
      name: 'egress-handoff',
      start: () => (node.roles.sender ? shared.startSending(egress) : undefined),
      stop: () => shared.close(),
    });
  }
  // With a shared queue, a worker takes only routes with at least one of their models loaded.
  node.workerInfo = () => ({
    cannotRun: (route) => {
      const names = routeModels(route);
      return names.some((n) => registry.isReady(n)) ? undefined : `none of its models is loaded here (${names.join(', ')})`;
    },
    executionProvider: [...new Set(registry.states().map((s) => s.executionProvider).filter(Boolean))].join(',') || config.inference.executionProviders[0],
  });
  // A worker-only process keeps its result folders while sender processes have not taken them all.
  const shared = node.sharedHandoff;
  const keepResults = shared && !node.roles.sender ? () => shared.unsentReason() : undefined;
  const housekeeping = new Housekeeping({ node, registry, egress, keepResults });
  node.addService({ name: 'housekeeping', start: () => housekeeping.start(), stop: () => housekeeping.stop() });
  mountAdmin(node, { registry, egress, housekeeping, handoff: node.sharedHandoff });
  node.setProcessor(
    createProcessor({ config, registry, handoff, nodeVersion: NODE_VERSION, resultsDir: path.join(config.storage.dir, 'results') }),
  );
  return node;
}
