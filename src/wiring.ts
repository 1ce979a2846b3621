/**
 * Builds a StrokeNode with every stage this build has: the place where the processor (study →
 * pipelines → results → egress), the model registry, admin page and metrics are plugged in.
 * Tests use it too, so what they run is what `npm start` runs.
 */
import * as path from 'path';
import { Config } from './config/schema';
import { EgressService } from './egress/egress';
import { ModelRegistry } from './models/registry';
import { NODE_VERSION, StrokeNode } from './node';
import { createProcessor } from './pipelines/processor';
import { mountAdmin } from './admin';
import { Housekeeping } from './jobs/housekeeping';

export interface BuiltNode extends StrokeNode {
  registry: ModelRegistry;
  egress: EgressService;
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
  node.addService({ name: 'models', start: async () => void (await registry.loadAll()), stop: () => registry.close() });
  // The outbox is filled by the worker side; only a process with the sender role drains it.
  if (node.roles.sender) node.addService({ name: 'egress', start: () => egress.start(), stop: () => egress.stop() });
  // With a shared queue, a worker takes only routes with at least one of their models loaded.
  node.workerInfo = () => ({
    cannotRun: (route) => {
      const names = Object.values(route.models);
      return names.some((n) => registry.isReady(n)) ? undefined : `none of its models is loaded here (${names.join(', ')})`;
    },
    executionProvider: [...new Set(registry.states().map((s) => s.executionProvider).filter(Boolean))].join(',') || config.inference.executionProviders[0],
  });
  const housekeeping = new Housekeeping({ node, registry, egress });
  node.addService({ name: 'housekeeping', start: () => housekeeping.start(), stop: () => housekeeping.stop() });
  mountAdmin(node, { registry, egress, housekeeping });
  node.setProcessor(
    createProcessor({ config, registry, egress, nodeVersion: NODE_VERSION, resultsDir: path.join(config.storage.dir, 'results') }),
  );
  return node;
}
