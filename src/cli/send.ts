#!/usr/bin/env node
/**
 * `npm run send -- <folder|file>… [--dimse host:port] [--aec AET] [--aet AET] [--stow URL] [--token T]`
 *
 * Sends DICOM files (folders are walked recursively; non-DICOM files are skipped) to the node or to
 * any destination, by C-STORE (default: the local node at 127.0.0.1:11112, called AE STROKEAI) or by
 * STOW-RS. Uses the same senders as the node's egress, so what it does is what the node does.
 * Exit code 0 when every instance was accepted, 1 otherwise (each failure printed with its reason).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DimseSender } from '../egress/dimse-sender';
import { describeFile } from '../egress/outbox';
import { SendItem, Sender } from '../egress/sender';
import { StowSender } from '../egress/stow-sender';

interface Args {
  paths: string[];
  dimse?: { host: string; port: number };
  stow?: string;
  token?: string;
  aec: string;
  aet: string;
  batch: number;
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`${msg}\n`);
  process.stderr.write(
    'usage: stroke-node-send <folder|file>… [--dimse host:port] [--aec AET] [--aet AET] [--stow URL] [--token TOKEN] [--batch N]\n' +
      '  default: C-STORE to 127.0.0.1:11112, called AE STROKEAI, calling AE STROKESEND\n',
  );
  process.exit(2);
}

export function parseArgs(argv: string[]): Args {
  const a: Args = { paths: [], aec: 'STROKEAI', aet: 'STROKESEND', batch: 100 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    const next = () => argv[++i] ?? usage(`${v} needs a value`);
    if (v === '--dimse') {
      const [host, port] = next().split(':');
      if (!host || !Number(port)) usage('--dimse expects host:port');
      a.dimse = { host, port: Number(port) };
    } else if (v === '--stow') a.stow = next();
    else if (v === '--token') a.token = next();
    else if (v === '--aec') a.aec = next();
    else if (v === '--aet') a.aet = next();
    else if (v === '--batch') a.batch = Math.max(1, Number(next()));
    else if (v === '-h' || v === '--help') usage();
    else if (v.startsWith('--')) usage(`unknown option ${v}`);
    else a.paths.push(v);
  }
  if (a.paths.length === 0) usage('no file or folder given');
  if (!a.dimse && !a.stow) a.dimse = { host: '127.0.0.1', port: 11112 };
  return a;
}

function walk(p: string): string[] {
  const st = fs.statSync(p);
  if (st.isFile()) return [p];
  return fs
    .readdirSync(p)
    .sort()
    .flatMap((f) => walk(path.join(p, f)));
}

export async function sendFiles(a: Args): Promise<{ sent: number; failed: { file: string; reason: string }[]; skipped: string[] }> {
  const items: SendItem[] = [];
  const skipped: string[] = [];
  for (const f of a.paths.flatMap(walk)) {
    try {
      const d = describeFile({ path: path.resolve(f) });
      items.push({ id: items.length, path: d.path, sopInstanceUid: d.sopInstanceUid, sopClassUid: d.sopClassUid, studyInstanceUid: d.studyInstanceUid, transferSyntaxUid: d.transferSyntaxUid });
    } catch {
      skipped.push(f);
    }
  }
  const sender: Sender = a.stow
    ? new StowSender({ name: 'cli', type: 'stow', url: a.stow, bearerToken: a.token, overlaySc: false })
    : new DimseSender(
        { name: 'cli', type: 'dimse', host: a.dimse!.host, port: a.dimse!.port, calledAeTitle: a.aec, callingAeTitle: a.aet, overlaySc: false },
        { defaultCallingAeTitle: a.aet },
      );
  let sent = 0;
  const failed: { file: string; reason: string }[] = [];
  for (let i = 0; i < items.length; i += a.batch) {
    const batch = items.slice(i, i + a.batch);
    const r = await sender.send(batch);
    for (const it of r.items) {
      if (it.ok) sent++;
      else failed.push({ file: items[it.id].path, reason: it.message ?? r.error ?? `status ${it.status}` });
    }
  }
  return { sent, failed, skipped };
}

if (require.main === module) {
  const args = parseArgs(process.argv.slice(2));
  sendFiles(args)
    .then((r) => {
      for (const f of r.failed) process.stderr.write(`FAILED ${f.file}: ${f.reason}\n`);
      process.stdout.write(`sent ${r.sent}, failed ${r.failed.length}, skipped ${r.skipped.length} non-DICOM file(s)\n`);
      process.exit(r.failed.length ? 1 : 0);
    })
    .catch((e) => {
      process.stderr.write(`send failed: ${(e as Error).message}\n`);
      process.exit(1);
    });
}
