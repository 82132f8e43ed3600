/**
 * The parent side of benchmark processes: spawns a script as a separate Node
 * process pinned to one core (`taskset -c CPU`, when available and the
 * machine has at least two cores), waits for its `ready` report, sends it
 * messages, and stops it. Every child is tracked so an interrupted run
 * leaves nothing behind.
 */

import { spawn, spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { isAbsolute } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Servers under test (gateway, bare Fastify, in-process measurements). */
export const SERVER_CPU = 0
/** The load generator, and the upstream (the gateway's neighbour machine, in effect). */
export const LOAD_CPU = 1

const READY_TIMEOUT_MS = 60_000
const CALL_TIMEOUT_MS = 600_000

let tasksetChecked = null
/** True when processes can be pinned: `taskset` runs and there are at least two cores. */
export function canPin() {
  if (tasksetChecked === null) {
    const probe = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    tasksetChecked = probe.status === 0 && availableParallelism() >= 2
  }
  return tasksetChecked
}

/** The command line that runs `argv` on `cpu` (unpinned when pinning is unavailable). */
export function pinned(cpu, argv) {
  return canPin() ? ['taskset', ['-c', String(cpu), ...argv]] : [argv[0], argv.slice(1)]
}

const live = new Set()

/** Kills every child still running (by its own pid). Called on exit and on SIGINT/SIGTERM. */
export function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  live.clear()
}

/** Runs `argv` pinned to `cpu` and collects its output; rejects past `timeoutMs`. */
export function runPinned(cpu, argv, { timeoutMs }) {
  const [cmd, args] = pinned(cpu, argv)
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    live.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${argv[0]} did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      live.delete(child)
      reject(err)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      live.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

/**
 * Starts `bench/<script>` as a child process on `cpu` with `opts` (JSON in
 * argv[2]) and resolves once it reports ready.
 *
 * @returns {Promise<{ info: any, pid: number, call: (type: string, args?: unknown) => Promise<any>, stop: () => Promise<void> }>}
 */
export function startChild(script, opts, { cpu, nodeArgs = [] }) {
  // Relative to bench/, or an absolute path (another revision's build, bench/lib/base-build.mjs).
  const file = isAbsolute(script) ? script : fileURLToPath(new URL(`../${script}`, import.meta.url))
  // A library deprecation notice per process (FSTDEP024, from buildApp's options) would drown the progress lines.
  const [cmd, args] = pinned(cpu, [
    process.execPath,
    '--disable-warning=FSTDEP024',
    ...nodeArgs,
    file,
    JSON.stringify(opts ?? {}),
  ])
  const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  live.add(child)
  let nextId = 1
  const pending = new Map()
  let exited = false
  child.on('message', (msg) => {
    const waiter = pending.get(msg?.id)
    if (!waiter) return
    pending.delete(msg.id)
    if (msg.ok) waiter.resolve(msg.result)
    else waiter.reject(new Error(`${script}: ${msg.error}`))
  })
  child.on('exit', (code, signal) => {
    exited = true
    live.delete(child)
    for (const waiter of pending.values()) waiter.reject(new Error(`${script} exited (${code ?? signal})`))
    pending.clear()
  })
  const call = (type, callArgs) =>
    new Promise((resolve, reject) => {
      if (exited) {
        reject(new Error(`${script} is not running`))
        return
      }
      const id = nextId++
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${script}: no answer to ${type} within ${CALL_TIMEOUT_MS} ms`))
      }, CALL_TIMEOUT_MS)
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      child.send({ id, type, args: callArgs })
    })
  const stop = async () => {
    if (exited) return
    const gone = new Promise((resolve) => child.once('exit', resolve))
    call('stop').catch(() => {})
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await gone
    clearTimeout(timer)
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${script} did not start within ${READY_TIMEOUT_MS} ms`))
    }, READY_TIMEOUT_MS)
    const onMessage = (msg) => {
      if (msg?.type === 'ready') {
        clearTimeout(timer)
        child.off('message', onMessage)
        // taskset execs the command: the pid is the server's.
        resolve({ info: msg.info, pid: child.pid, call, stop })
      } else if (msg?.type === 'failed') {
        clearTimeout(timer)
        child.off('message', onMessage)
        reject(new Error(`${script} failed to start: ${msg.error}`))
      }
    }
    child.on('message', onMessage)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${script} exited before it was ready (${code ?? signal})`))
    })
  })
}
