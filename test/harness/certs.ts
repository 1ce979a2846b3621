/**
 * A small test PKI made with the `openssl` command line (RSA 2048, valid two days): a CA, a server
 * certificate for localhost / 127.0.0.1 and a client certificate signed by it, and a second,
 * untrusted ("rogue") CA with its own server/client certificate for the same names, so that only
 * trust differs in the negative cases. RSA because DCMTK's default BCP 195 profile offers only
 * RSA key exchange suites.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The trusted CA certificate (PEM). */
  ca: string;
  server: CertPair;
  client: CertPair;
  /** A CA nobody trusts, and a certificate it signed (SANs localhost / 127.0.0.1, server + client use). */
  rogueCa: string;
  rogue: CertPair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string, cn: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-keyout', key, '-out', cert, '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  return { cert, key };
}

let serial = 1000;
function issue(dir: string, name: string, cn: string, ca: { cert: string; key: string }): CertPair {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '',
    ].join('\n'),
  );
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(serial++), '-sha256', '-days', '2', '-extfile', ext, '-out', cert], dir);
  return { cert, key };
}

/** Make the whole PKI in `dir` (a few hundred ms of CPU). */
export function makeTestPki(dir: string): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const ca = makeCa(dir, 'ca', 'Stroke node test CA');
  const rogueCa = makeCa(dir, 'rogue-ca', 'Untrusted test CA');
  return {
    dir,
    ca: ca.cert,
    server: issue(dir, 'server', 'localhost', ca),
    client: issue(dir, 'client', 'MODALITY1', ca),
    rogueCa: rogueCa.cert,
    rogue: issue(dir, 'rogue', 'localhost', rogueCa),
  };
}
