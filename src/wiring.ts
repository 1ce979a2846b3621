/**
 * Builds a StrokeNode with every stage this build has: the place where the processor (study →
 * pipelines → results → egress), admin page and metrics are plugged in. Tests use it too, so
 * what they run is what `npm start` runs.
 */
import { Config } from './config/schema';
import { StrokeNode } from './node';

export async function buildNode(config: Config): Promise<StrokeNode> {
  const node = new StrokeNode(config);
  return node;
}
