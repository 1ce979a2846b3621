/**
 * A slow network link for fault tests: a TCP proxy on 127.0.0.1 that forwards what a client sends at a
 * fixed rate (the replies go back at full speed). Over loopback a 32 MB instance arrives in ~0.1 s on a fast
 * machine, too quickly for a test to act "during" the transfer; through this link it takes seconds, so
 * "kill the sender / the node while the instance is streaming" no longer depends on the machine's speed.
 */
import * as net from 'net';

export interface SlowLink {
  port: number;
  /** Close the listener and every open connection. */
  close(): Promise<void>;
}

export async function slowLink(targetPort: number, bytesPerSecond: number): Promise<SlowLink> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk: Buffer) => {
      // forward this chunk, then hold the client until its share of the rate has elapsed
      client.pause();
      upstream.write(chunk);
      setTimeout(() => client.resume(), Math.ceil((chunk.length / bytesPerSecond) * 1000));
    });
    upstream.pipe(client);
    // one side gone: the other side sees the connection drop, as it would without the proxy
    const drop = (other: net.Socket) => () => {
      if (!other.destroyed) other.destroy();
    };
    client.on('close', drop(upstream));
    upstream.on('close', drop(client));
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
