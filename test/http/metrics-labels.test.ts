/**
 * Hostile usernames, tokens, paths and methods never become metric labels, and
 * the number of series stays bounded however many distinct ones are sent.
 */
import t from 'tap'
import { makePolicy, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

t.test('labels stay bounded end to end', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, listen: false })
  const series = async () => {
    const text = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body
    return { text, count: text.split('\n').filter((l) => l.startsWith('ipdr_gateway_')).length }
  }
  const send = async (i: number) => {
    const user = `evil"user{${i}}\\n`
    await gw.app.inject({
      method: 'GET',
      url: '/api/ipdrcustomers',
      headers: {
        authorization: `Bearer hostile-token-${i}`,
        'x-trisul-username': user.replace(/[^\x20-\x7e]/g, ''),
      },
    })
    await gw.app.inject({ method: 'GET', url: `/no/such/path/${i}?x=${i}` })
    await gw.app.inject({
      method: 'GET',
      url: `/api/ipdrcustomers/hostile-path-${i}`,
      headers: { authorization: `Basic ${Buffer.from(`u${i}:p${i}`).toString('base64')}` },
    })
    await gw.app.inject({ method: 'PROPFIND' as 'GET', url: `/api/ipdrcustomers/${i}` })
  }
  await series() // the scrape itself is a route with its own series
  for (let i = 0; i < 5; i++) await send(i)
  const after5 = await series()
  for (let i = 5; i < 60; i++) await send(i)
  const after60 = await series()
  const names = (text: string) =>
    new Set(
      text
        .split('\n')
        .filter((l) => l.startsWith('ipdr_gateway_'))
        .map((l) => l.replace(/ [^ ]+$/, '')),
    )
  const added = [...names(after60.text)].filter((l) => !names(after5.text).has(l))
  t.same(added, [], 'no new series per distinct username, token or path')
  for (const needle of ['hostile-token', 'evil', 'hostile-path', '/no/such', 'PROPFIND', 'u7', 'p7']) {
    t.notOk(after60.text.includes(needle), `${needle} is not in the exposition`)
  }
  t.match(after60.text, /route="\/api\/ipdrcustomers\/:UserID"/, 'route patterns, not URLs')
  t.match(after60.text, /route="unmatched"/)
})
