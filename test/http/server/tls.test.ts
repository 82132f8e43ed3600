/**
 * HTTPS for clients (shared/SPEC.md 6, issue 19) with certificates made by
 * `openssl` for the test: a client that trusts the CA gets through; plain
 * HTTP on the TLS port gets no data; TLS 1.1 is refused; with a client CA a
 * missing or foreign client certificate is refused; a certificate swapped on
 * disk is what the next handshake sees after a reload (SIGHUP in a real
 * process), while an open keep-alive connection keeps working; a bad pair
 * stops the start (or a reload), naming the file.
 */
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { Agent, request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { parseServeConfig } from '../../../src/config.js'
import { loadTlsMaterial, TlsMaterialError } from '../../../src/http/server/tls.js'
import { runServer } from '../../../src/server.js'
import { runCli } from '../../helpers/child.js'
import { makePolicy, tempDir, writePolicyDir } from '../../helpers/gateway.js'
import { rawHttp } from '../../helpers/raw-http.js'
import { closedPort } from '../../helpers/recording-upstream.js'

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

/** A CA, and certificates it signs: two server pairs for 127.0.0.1 and a client; a foreign CA and its client. */
function makeCertificates(t: Test) {
  const dir = tempDir(t)
  const p = (name: string) => join(dir, name)
  const ca = (name: string) =>
    openssl([
      'req',
      '-x509',
      ...EC,
      '-keyout',
      p(`${name}.key`),
      '-out',
      p(`${name}.pem`),
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ])
  const signed = (name: string, by: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), `${ext}\n`)
    openssl(['req', ...EC, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${name}`])
    openssl([
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p(`${by}.pem`),
      '-CAkey',
      p(`${by}.key`),
      '-CAcreateserial',
      '-out',
      p(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      p(`${name}.ext`),
    ])
  }
  ca('ca')
  ca('foreign-ca')
  signed('server-a', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth')
  signed('server-b', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth')
  signed('client', 'ca', 'extendedKeyUsage=clientAuth')
  signed('intruder', 'foreign-ca', 'extendedKeyUsage=clientAuth')
  // The files the gateway is pointed at; the test swaps their content.
  copyFileSync(p('server-a.pem'), p('live.pem'))
  copyFileSync(p('server-a.key'), p('live.key'))
  return { dir, p, read: (name: string) => readFileSync(p(name)) }
}

interface Answer {
  status: number
  body: string
  fingerprint: string
  reused: boolean
}

function get(url: string, opts: { ca: Buffer; cert?: Buffer; key?: Buffer; agent?: Agent }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { ca: opts.ca, cert: opts.cert, key: opts.key, agent: opts.agent ?? false },
      (res) => {
        // Read now: a keep-alive socket goes back to the pool (and off the response) at the end.
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
        let body = ''
        res.on('data', (c: Buffer) => {
          body += c.toString()
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, fingerprint, reused: req.reusedSocket }),
        )
      },
    )
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
    req.end()
  })
}

/** `ipdr-gateway serve` as a process with the pair given by flags, in front of nothing. */
function serveProcess(t: Test, certFile: string, keyFile: string) {
  const dir = writePolicyDir(tempDir(t), {})
  return runCli(t, [
    'serve',
    '--policies',
    dir,
    '--port',
    '0',
    '--upstream',
    'http://127.0.0.1:9',
    '--tls-cert',
    certFile,
    '--tls-key',
    keyFile,
  ])
}

async function serve(t: Test, gateway: Record<string, unknown> = {}, flags: string[] = []) {
  const policy = await makePolicy(t, { gateway })
  const config = parseServeConfig(
    ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', ...flags],
    {},
  )
  const server = await runServer({
    config,
    policy,
    env: {},
    upstreamUrl: 'http://127.0.0.1:9',
    handleSignals: false,
  })
  t.teardown(() => server.close())
  return server
}

t.test('a client that trusts the CA gets through; plain HTTP and TLS 1.1 do not', async (t) => {
  const certs = makeCertificates(t)
  const server = await serve(t, {}, ['--tls-cert', certs.p('live.pem'), '--tls-key', certs.p('live.key')])
  t.match(server.address, /^https:\/\/127\.0\.0\.1:\d+$/)
  const ok = await get(`${server.address}/healthz`, { ca: certs.read('ca.pem') })
  t.equal(ok.status, 200)
  t.match(ok.body, /"status":"ok"/)
  await t.rejects(
    get(`${server.address}/healthz`, { ca: certs.read('foreign-ca.pem') }),
    /self[- ]signed|unable to verify|certificate/i,
    'a client that does not trust the CA stops',
  )

  const port = Number(new URL(server.address).port)
  const plain = await rawHttp(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 5000).catch(
    (err: Error) => `error: ${err.message}`,
  )
  t.notMatch(plain, /HTTP\/1\.1 200|"status"/, 'plain HTTP on the TLS port gets no answer that carries data')

  const handshake = (versions: { minVersion: 'TLSv1' | 'TLSv1.2'; maxVersion: 'TLSv1.1' | 'TLSv1.2' }) =>
    new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ca: certs.read('ca.pem'), ...versions }, () => {
        resolve(`connected ${socket.getProtocol()}`)
        socket.end()
      })
      socket.on('error', (err) => resolve(`refused: ${err.message}`))
    })
  t.match(
    await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }),
    /^refused/,
    'TLS 1.1 and below are refused',
  )
  t.equal(
    await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }),
    'connected TLSv1.2',
    'TLS 1.2 is the floor',
  )
})

t.test(
  'with clientCaFile a client certificate signed by that CA is required; /metrics follows',
  async (t) => {
    const certs = makeCertificates(t)
    const metricsPort = await closedPort()
    const server = await serve(t, {
      server: {
        tls: {
          certFile: certs.p('live.pem'),
          keyFile: certs.p('live.key'),
          clientCaFile: certs.p('ca.pem'),
        },
      },
      metrics: { port: metricsPort },
    })
    const ca = certs.read('ca.pem')
    await t.rejects(get(`${server.address}/healthz`, { ca }), 'no client certificate: no connection')
    await t.rejects(
      get(`${server.address}/healthz`, {
        ca,
        cert: certs.read('intruder.pem'),
        key: certs.read('intruder.key'),
      }),
      'a foreign client certificate is refused',
    )
    const ok = await get(`${server.address}/healthz`, {
      ca,
      cert: certs.read('client.pem'),
      key: certs.read('client.key'),
    })
    t.equal(ok.status, 200)
  },
)

t.test(
  'a reload swaps the certificate for new handshakes; an open connection keeps working; a bad pair is refused',
  async (t) => {
    const certs = makeCertificates(t)
    const server = await serve(t, {
      server: { tls: { certFile: certs.p('live.pem'), keyFile: certs.p('live.key') } },
    })
    const ca = certs.read('ca.pem')
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const fingerprint = (name: string) => new X509Certificate(certs.read(name)).fingerprint256
    const first = await get(`${server.address}/healthz`, { ca, agent })
    t.equal(first.fingerprint, fingerprint('server-a.pem'))

    copyFileSync(certs.p('server-b.pem'), certs.p('live.pem'))
    copyFileSync(certs.p('server-b.key'), certs.p('live.key'))
    t.equal(await server.reloadTls(), true)
    const kept = await get(`${server.address}/healthz`, { ca, agent })
    t.equal(kept.status, 200)
    t.ok(kept.reused, 'the open keep-alive connection was reused')
    t.equal(kept.fingerprint, fingerprint('server-a.pem'), 'and keeps its certificate')
    const fresh = await get(`${server.address}/healthz`, { ca })
    t.equal(fresh.fingerprint, fingerprint('server-b.pem'), 'the next handshake sees the new certificate')

    copyFileSync(certs.p('server-a.key'), certs.p('live.key'))
    t.equal(await server.reloadTls(), false, 'a key that is not the certificate’s is refused')
    const still = await get(`${server.address}/healthz`, { ca })
    t.equal(still.fingerprint, fingerprint('server-b.pem'), 'the old pair stays in force')
    const reloads = await server.app.gatewayMetrics.registry.getSingleMetricAsString(
      'ipdr_gateway_policy_reloads_total',
    )
    t.match(reloads, /result="invalid"} 1/)
  },
)

t.test('the pair is checked before anything listens; each problem names its file', async (t) => {
  const certs = makeCertificates(t)
  const files = (cert: string, key: string) => ({
    certFile: certs.p(cert),
    keyFile: certs.p(key),
    clientCaFile: null,
  })
  const ok = await loadTlsMaterial(files('server-a.pem', 'server-a.key'))
  t.match(ok.fingerprint, /^[0-9A-F:]+$/)
  await t.rejects(
    loadTlsMaterial(files('server-a.pem', 'server-b.key')),
    new TlsMaterialError(
      `key ${certs.p('server-b.key')} does not match certificate ${certs.p('server-a.pem')}`,
    ),
  )
  await t.rejects(loadTlsMaterial(files('missing.pem', 'server-a.key')), {
    message: /^certificate .*missing\.pem: cannot be read \(ENOENT\)/,
  })
  await t.rejects(loadTlsMaterial(files('server-a.key', 'server-a.key')), {
    message: /not a PEM certificate/,
  })
  await t.rejects(loadTlsMaterial(files('server-a.pem', 'server-a.pem')), {
    message: /not a PEM private key/,
  })
  await t.rejects(loadTlsMaterial(files('server-a.pem', 'server-a.key'), Date.now() + 10 * 86_400_000), {
    message: /expired on/,
  })
  await t.rejects(loadTlsMaterial(files('server-a.pem', 'server-a.key'), Date.now() - 10 * 86_400_000), {
    message: /not valid before/,
  })
  await t.rejects(
    loadTlsMaterial({ ...files('server-a.pem', 'server-a.key'), clientCaFile: certs.p('server-a.key') }),
    { message: /client CA .*not a PEM certificate/ },
  )

  const child = serveProcess(t, certs.p('server-a.pem'), certs.p('server-b.key'))
  t.equal((await child.exited).code, 1, 'a mismatched pair stops the start')
  t.match(child.stderr(), /server-b\.key does not match certificate .*server-a\.pem/)
  const bad = writePolicyDir(tempDir(t), {
    gateway: { server: { tls: { certFile: 'nope.pem', keyFile: 'nope.key' } } },
  })
  const check = runCli(t, ['check-policies', bad])
  t.equal((await check.exited).code, 1)
  t.match(check.stderr(), /server\.tls\.certFile: cannot read "nope\.pem"/)
})

t.test('SIGHUP reloads the certificate of a running gateway', async (t) => {
  const certs = makeCertificates(t)
  const child = serveProcess(t, certs.p('live.pem'), certs.p('live.key'))
  const m = await child.waitFor(/"address":"(https:\/\/127\.0\.0\.1:\d+)"/)
  const base = m[1] as string
  const ca = certs.read('ca.pem')
  const b = new X509Certificate(certs.read('server-b.pem')).fingerprint256
  t.not((await get(`${base}/healthz`, { ca })).fingerprint, b)
  copyFileSync(certs.p('server-b.pem'), certs.p('live.pem'))
  copyFileSync(certs.p('server-b.key'), certs.p('live.key'))
  child.proc.kill('SIGHUP')
  await child.waitFor(/TLS certificate reloaded/)
  t.equal((await get(`${base}/healthz`, { ca })).fingerprint, b)
  child.proc.kill('SIGTERM')
  t.equal((await child.exited).code, 0)
})
