/**
 * Row 16 (c): `audit verify` of a large trail, in this process: a trail of `bytes` (default 1 GiB)
 * written as the writer writes it (chained, rotated every 100 MiB, a signed checkpoint a minute of
 * lines and first in each file), then verified with the public key; the time and the peak RSS.
 * Handler `run` `{ bytes, dir }`.
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import { closeSync, openSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { checkpointPayload, formatLine, GENESIS, lineHash } from '../../dist/audit/chain.js'
import { rotatedName } from '../../dist/audit/files.js'
import { verifyTrail } from '../../dist/audit/verify.js'
import { serveAsChild } from '../lib/child.mjs'

serveAsChild(async () => ({
  info: {},
  async handle(type, { bytes = 1 << 30, dir }) {
    if (type !== 'run') throw new Error(`unknown ${type}`)
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const file = join(dir, 'audit.jsonl')
    const instance = 'bench:1'
    const files = []
    let fd = openSync(file, 'w')
    let size = 0
    let total = 0
    let seq = 0
    let prev = GENESIS
    let t = Date.UTC(2026, 0, 1)
    const append = (fields) => {
      seq += 1
      const text = formatLine(seq, prev, { time: new Date(t).toISOString(), instance, ...fields })
      const buf = Buffer.from(`${text}\n`)
      writeSync(fd, buf)
      size += buf.length
      total += buf.length
      prev = lineHash(text)
    }
    const checkpoint = () => {
      const time = new Date(t).toISOString()
      const signature = sign(
        null,
        checkpointPayload(instance, 'audit.jsonl', seq + 1, prev, time),
        privateKey,
      ).toString('base64')
      append({ time, phase: 'checkpoint', head: prev, signature })
    }
    const write = {
      phase: 'access',
      requestId: 'f3b1c2d4-0000-4000-8000-000000000000',
      consumer: 'crm',
      client: '10.0.4.7',
      trisulUser: 'crm',
      context: 'default',
      resource: 'customers',
      operation: 'read',
      query: { UserID: 'B68t19' },
      status: 200,
      count: 1,
      userIds: ['B68t19'],
      redacted: [],
    }
    const started = performance.now()
    while (total < bytes) {
      t += 20
      append(write)
      if (seq % 3000 === 0) checkpoint()
      if (size > 100 * 1024 * 1024) {
        closeSync(fd)
        const rotated = rotatedName(file, seq)
        // Renamed as the writer renames; the next file begins with a checkpoint.
        const { renameSync } = await import('node:fs')
        renameSync(file, rotated)
        files.push(rotated)
        fd = openSync(file, 'w')
        size = 0
        checkpoint()
      }
    }
    checkpoint()
    closeSync(fd)
    files.push(file)
    const writeMs = performance.now() - started
    let peak = process.memoryUsage().rss
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 20)
    const before = process.memoryUsage().rss
    const t0 = performance.now()
    const report = await verifyTrail(files, { publicKey })
    const verifyMs = performance.now() - t0
    clearInterval(timer)
    for (const f of files) rmSync(f, { force: true })
    return {
      ok: report.ok,
      lines: seq,
      bytes: total,
      files: files.length,
      writeMs,
      verifyMs,
      rssBeforeMb: before / 1048576,
      rssPeakMb: peak / 1048576,
      checkpoints: report.chains[0]?.checkpoints ?? 0,
    }
  },
}))
