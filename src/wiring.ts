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
  node.addService({ name: 'egress', start: () => egress.start(), stop: () => egress.stop() });
  const housekeeping = new Housekeeping({ node, registry, egress });
  node.addService({ name: 'housekeeping', start: () => housekeeping.start(), stop: () => housekeeping.stop() });
  mountAdmin(node, { registry, egress, housekeeping });
  node.setProcessor(
    createProcessor({ config, registry, egress, nodeVersion: NODE_VERSION, resultsDir: path.join(config.storage.dir, 'results') }),
  );
  return node;
}
