/**
 * What one process does. A single machine runs everything (`all`, the default); a deployment on
 * several machines splits the work over processes sharing a BullMQ/Redis queue:
 *  - receiver: DIMSE C-STORE SCP and STOW-RS; stores instances and notes their arrival in the queue
 *  - worker:   takes study jobs (one at a time: run one worker process per GPU), runs the models,
 *              writes the results and puts them in its outbox, or, without the sender role on the
 *              shared queue, hands their references to the sender processes through Redis
 *  - sender:   drains this process's outbox (egress to the destinations); on the shared queue it also
 *              takes the results handed over by worker processes (src/egress/redis-handoff.ts)
 */
export type Role = 'receiver' | 'worker' | 'sender';

export interface Roles {
  receiver: boolean;
  worker: boolean;
  sender: boolean;
}

export function resolveRoles(list: readonly ('receiver' | 'worker' | 'sender' | 'all')[]): Roles {
  const all = list.includes('all');
  return {
    receiver: all || list.includes('receiver'),
    worker: all || list.includes('worker'),
    sender: all || list.includes('sender'),
  };
}
