/**
 * HTTPS for clients (shared/SPEC.md 6): the certificate, key and optional
 * client CA of `server.tls` (or `--tls-cert` / `--tls-key`), read and checked
 * before they are used, at start and on every reload. A pair that does not
 * hold together (unreadable, not PEM, a key that is not the certificate's,
 * expired or not yet valid) is refused with a message naming the file, and
 * the server keeps what it had.
 *
 * TLS 1.2 is the floor. With a client CA, the handshake requires a client
 * certificate that CA signed (`requestCert` + `rejectUnauthorized`): no
 * certificate, no connection, before any HTTP is read.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { SecureContextOptions } from 'node:tls'
import { TLS12_CIPHERS } from '../../shared/tls-suites.js'

export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
  /** Client certificates must be signed by this CA; null: no client certificate asked for. */
  readonly clientCaFile: string | null
  /** TLS 1.2 suites offered (`server.tls.ciphers`, a subset of {@link TLS12_CIPHERS}); absent or null: all of them. */
  readonly ciphers?: readonly string[] | null
}

/** What Node's https server and `setSecureContext` take. */
export interface TlsMaterial {
  readonly cert: Buffer
  readonly key: Buffer
  readonly ca?: Buffer
  /** The certificate's SHA-256 fingerprint and end of validity, for the log. */
  readonly fingerprint: string
  readonly validTo: string
  /** The TLS 1.2 suites offered; absent: {@link TLS12_CIPHERS}. */
  readonly ciphers?: readonly string[]
}

/** TLS 1.2 and later only (SPEC 6). */
export const TLS_MIN_VERSION = 'TLSv1.2' as const

/**
 * TLS 1.3 suites, as Node offers them by default. Named explicitly: Node splits its
 * `ciphers` option into 1.2 and 1.3 parts, and a string with no 1.3 suite turns TLS 1.3 off.
 */
const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256']

// Not a GatewayError: a startup and reload failure, reported to the operator (stops the start, or keeps the old pair), never to a client.
export class TlsMaterialError extends Error {
  override name = 'TlsMaterialError'
}

async function read(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new TlsMaterialError(`${what} ${file}: cannot be read (${code ?? 'error'})`)
  }
}

/** Reads and checks the files; throws TlsMaterialError naming the file at fault. `now`: for the validity check. */
export async function loadTlsMaterial(files: TlsFiles, now: number = Date.now()): Promise<TlsMaterial> {
  const cert = await read(files.certFile, 'certificate')
  const key = await read(files.keyFile, 'key')
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch {
    throw new TlsMaterialError(`certificate ${files.certFile}: not a PEM certificate`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw new TlsMaterialError(
      `key ${files.keyFile}: not a PEM private key (an encrypted key is not supported)`,
    )
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsMaterialError(`key ${files.keyFile} does not match certificate ${files.certFile}`)
  }
  const from = Date.parse(x509.validFrom)
  const to = Date.parse(x509.validTo)
  if (now >= to) throw new TlsMaterialError(`certificate ${files.certFile}: expired on ${x509.validTo}`)
  if (now < from)
    throw new TlsMaterialError(`certificate ${files.certFile}: not valid before ${x509.validFrom}`)
  let ca: Buffer | undefined
  if (files.clientCaFile !== null) {
    ca = await read(files.clientCaFile, 'client CA')
    try {
      new X509Certificate(ca)
    } catch {
      throw new TlsMaterialError(`client CA ${files.clientCaFile}: not a PEM certificate`)
    }
  }
  const ciphers = files.ciphers ?? null
  const unknown = ciphers?.filter((c) => !TLS12_CIPHERS.includes(c)) ?? []
  if (unknown.length > 0)
    throw new TlsMaterialError(
      `server.tls.ciphers: ${unknown.join(', ')} not among the ECDHE + AEAD suites offered (${TLS12_CIPHERS.join(', ')})`,
    )
  return {
    cert,
    key,
    ...(ca ? { ca } : {}),
    fingerprint: x509.fingerprint256,
    validTo: x509.validTo,
    ...(ciphers ? { ciphers } : {}),
  }
}

/** The options of an https server (Fastify's `https`) serving `material`. */
export function httpsServerOptions(material: TlsMaterial): SecureContextOptions & {
  requestCert: boolean
  rejectUnauthorized: boolean
} {
  const withClientCa = material.ca !== undefined
  return {
    ...secureContextOptions(material),
    requestCert: withClientCa,
    rejectUnauthorized: withClientCa,
  }
}

/** The options of `server.setSecureContext` for a reload: the same floor, the new pair. */
export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca ? { ca: material.ca } : {}),
    minVersion: TLS_MIN_VERSION,
    ciphers: [...(material.ciphers ?? TLS12_CIPHERS), ...TLS13_SUITES].join(':'),
    honorCipherOrder: true,
  }
}
