/**
 * Starts an emulator on 127.0.0.1 port 0 for one test and talks to it over a
 * real socket with undici `request` (which, unlike fetch, sends a body on GET).
 */
import { Agent, request } from 'undici'
import { type EmulatorOptions, startEmulator } from '../../src/emulator/index.js'

export const TOKEN = 'test-token-not-secret'
export const OTHER_TOKEN = 'other-token-not-secret'

export const V2_USERS: EmulatorOptions['users'] = [
  { name: 'admin', token: TOKEN, contexts: null },
  { name: 'limited', token: OTHER_TOKEN, contexts: ['ipdr'] },
]

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes
  json: any
}

export interface TestEmulator {
  url: string
  /** Sends `body` (an object is JSON-encoded, a string sent as is, undefined sends none). */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>
  close(): Promise<void>
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export async function startTestEmulator(
  t: Teardown,
  overrides: Partial<EmulatorOptions> = {},
): Promise<TestEmulator> {
  const emulator = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: V2_USERS,
    contexts: ['default', 'ipdr', 'other'],
    ...overrides,
    port: 0,
    host: '127.0.0.1',
  })
  const dispatcher = new Agent({ connections: 32 })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await emulator.close()
    await dispatcher.close()
  }
  t.teardown(close)
  return {
    url: emulator.url,
    close,
    async call(method, path, body, headers = {}) {
      const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
      const res = await request(`${emulator.url}${path}`, {
        dispatcher,
        method: method as 'GET',
        body: payload,
        headers: payload === undefined ? headers : { 'content-type': 'application/json', ...headers },
      })
      const text = await res.body.text()
      let json: unknown
      try {
        json = text === '' ? undefined : JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: res.statusCode, headers: res.headers, text, json }
    },
  }
}

/** v2 credentials for the customers API (`contextname`). */
export function cred(context = 'default', username = 'admin', token = TOKEN) {
  return { api_token: token, username, contextname: context }
}

/** v2 credentials for the mapping API (`context`). */
export function mcred(context = 'default', username = 'admin', token = TOKEN) {
  return { api_token: token, username, context }
}

/** v1 credentials (both APIs). */
export function v1cred(username = 'admin', token = TOKEN) {
  return { api_token: token, username }
}
