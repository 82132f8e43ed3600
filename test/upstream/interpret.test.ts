import t from 'tap'
import { interpretResponse, outcomeOf } from '../../src/upstream/interpret.js'

const res = (statusCode: number, body: string) => ({
  statusCode,
  contentType: 'application/json',
  body: Buffer.from(body),
  seconds: 0,
})

t.test('interpretation table', async (t) => {
  const rows: [number, string, 'array' | 'object', string, string][] = [
    [200, '[{"id":1}]', 'array', 'array', 'ok'],
    [200, '  \n[]', 'array', 'array', 'ok'],
    [200, '{"id":1,"Name":"x"}', 'object', 'object', 'ok'],
    [200, '{"id":1}', 'array', 'invalid', 'invalid_response'],
    [200, '[]', 'object', 'invalid', 'invalid_response'],
    [200, '{"status":"ERROR","message":"Invalid API token"}', 'array', 'envelope', 'envelope_error'],
    [
      422,
      '{"status":"Error","message":"Duplicate Mapping for UserID : U1"}',
      'object',
      'envelope',
      'envelope_error',
    ],
    [200, '{"status":"Error"', 'object', 'invalid', 'invalid_response'],
    [200, 'not json', 'array', 'invalid', 'invalid_response'],
    [200, '', 'object', 'invalid', 'invalid_response'],
    [500, '{"status":"Error","message":"x"}', 'object', 'http_error', 'http_error'],
    [503, 'down', 'array', 'http_error', 'http_error'],
    [404, '<html>', 'array', 'http_error', 'http_error'],
    [404, '{"detail":"x"}', 'array', 'http_error', 'http_error'],
    [400, '{broken', 'object', 'http_error', 'http_error'],
    [401, '[]', 'array', 'http_error', 'http_error'],
  ]
  for (const [status, body, expect, kind, outcome] of rows) {
    const i = interpretResponse(res(status, body), expect)
    t.equal(i.kind, kind, `${status} ${body} (${expect})`)
    t.equal(outcomeOf(i), outcome)
  }
})
