/**
 * SPEC 13, TLS: TLS 1.2 offers only ECDHE suites with AEAD ciphers (Mozilla "intermediate"), so
 * `openssl s_client` asking for static RSA or CBC-SHA1 fails the handshake; TLS 1.3 works as Node
 * offers it; `server.tls.ciphers` narrows the list and refuses a suite outside it.
 */
import { spawn } from 'node:child_process'
import t from 'tap'
import { loadTlsMaterial, TlsMaterialError } from '../../src/http/server/tls.js'
import { selfSignedLoopbackCert } from '../helpers/certs.js'
import { makePolicy, startGateway } from '../helpers/gateway.js'
import { closedPort } from '../helpers/recording-upstream.js'

/** Runs openssl without blocking the loop (the gateway under test answers in this process). */
function openssl(args: string[], input = ''): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d.toString()
    })
    child.stderr.on('data', (d) => {
      out += d.toString()
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({ status, out })
    })
    child.stdin.end(input)
  })
}

t.test('TLS 1.2: ECDHE + AEAD only; TLS 1.3 as Node offers it', async (t) => {
  // RSA, so that static-RSA suites would be possible at all if they were offered.
  const { cert, key } = selfSignedLoopbackCert(t)
  const material = await loadTlsMaterial({ certFile: cert, keyFile: key, clientCaFile: null })
  const policy = await makePolicy(t)
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: `http://127.0.0.1:${await closedPort()}`,
    tls: material,
  })
  const port = new URL(gw.url).port
  const handshake = (...args: string[]) =>
    openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-servername', '127.0.0.1', ...args], 'Q\n')

  for (const suite of [
    'AES128-SHA',
    'AES256-GCM-SHA384',
    'ECDHE-RSA-AES128-SHA',
    'ECDHE-RSA-AES256-SHA384',
  ]) {
    const r = await handshake('-tls1_2', '-cipher', suite)
    t.not(r.status, 0, `${suite} is refused`)
    t.notMatch(r.out, new RegExp(`Cipher is ${suite}\\b`))
  }
  for (const suite of [
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ]) {
    const r = await handshake('-tls1_2', '-cipher', suite)
    t.match(r.out, new RegExp(`Cipher is ${suite}\\b`), `${suite} is offered`)
  }
  t.match((await handshake('-tls1_3')).out, /TLSv1\.3/, 'TLS 1.3 works')

  const narrowed = await loadTlsMaterial({
    certFile: cert,
    keyFile: key,
    clientCaFile: null,
    ciphers: ['ECDHE-RSA-AES256-GCM-SHA384'],
  })
  const gw2 = await startGateway(t, {
    policy,
    upstreamUrl: `http://127.0.0.1:${await closedPort()}`,
    tls: narrowed,
  })
  const port2 = new URL(gw2.url).port
  const only = (suite: string) =>
    openssl(['s_client', '-connect', `127.0.0.1:${port2}`, '-tls1_2', '-cipher', suite], 'Q\n')
  t.match((await only('ECDHE-RSA-AES256-GCM-SHA384')).out, /Cipher is ECDHE-RSA-AES256-GCM-SHA384/)
  t.not((await only('ECDHE-RSA-AES128-GCM-SHA256')).status, 0, 'server.tls.ciphers narrows the list')
  await t.rejects(
    loadTlsMaterial({ certFile: cert, keyFile: key, clientCaFile: null, ciphers: ['AES128-SHA'] }),
    TlsMaterialError,
    'a suite outside the list is refused',
  )
})

t.test('a cipher outside the ECDHE + AEAD list is a policy error', async (t) => {
  await t.rejects(
    makePolicy(t, {
      gateway: {
        server: {
          tls: { certFile: '/nonexistent.pem', keyFile: '/nonexistent.key', ciphers: ['AES128-SHA'] },
        },
      },
    }),
    /server\.tls\.ciphers\[0\]: "AES128-SHA" is not an ECDHE \+ AEAD suite/,
  )
})
