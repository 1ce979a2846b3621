/**
 * The ids of the tasks this build has (src/pipelines/<id>/). Kept apart from the task modules so the
 * configuration schema can validate routes[].tasks without loading any pipeline code; test/pipelines/tasks.test.ts
 * checks that it lists exactly the registered tasks (src/pipelines/tasks.ts).
 */
export const TASK_IDS = ['stroke-mr', 'stroke-ct', 'brain-tumour-mr', 'liver-ct-mr'] as const;
export type TaskId = (typeof TASK_IDS)[number];

/** What a route with no `tasks` runs: the stroke tasks (what the node did before tasks existed). */
export const DEFAULT_ROUTE_TASKS: TaskId[] = ['stroke-mr', 'stroke-ct'];
