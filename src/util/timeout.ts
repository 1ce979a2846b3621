/**
 * `p`, or a rejection with `message` after `ms`: for calls to a networked service (Redis) that would
 * otherwise wait for it forever. The timer is cleared either way; a late rejection of `p` is ignored.
 */
export async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  p.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
