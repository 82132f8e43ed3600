/**
 * A real browser as the client (issue 9): headless Chromium loads a CRM page
 * from another origin, which lists customers through the gateway with `fetch`
 * and a Bearer header (CORS), creates one, sees it in the next listing and gets
 * 304 on revalidation; a page from an origin the policy does not list is
 * refused by the browser. Then Swagger UI at /docs loads, is authorized
 * through its dialog, and runs "Try it out" on the listing.
 */
import t, { type Test } from 'tap'
import { startEmulator } from '../../src/emulator/index.js'
import { makePolicy, startGateway } from '../helpers/gateway.js'
import { launchChromium } from './chromium.js'
import { type CrmConfig, startCrmPage } from './crm-page.js'

// Obviously fake credentials of the emulator's demo user.
const USERNAME = 'demo'
const TOKEN = 'browser-test-token'
const SEEDED = 3

interface PageResult {
  status: number
  etag: string | null
  xCache: string | null
  total: string | null
  rateLimitRemaining: string | null
  requestId: string | null
  body: unknown
}

type Customer = { UserID: string; Name: string }

/** What the page script puts on `window` (the callbacks below run in the page). */
interface CrmGlobal {
  crm: {
    list(query?: string, etag?: string | null): Promise<PageResult>
    create(customer: Record<string, string>): Promise<PageResult>
  }
}

/** An emulator with seeded customers, a gateway whose policy allows `origins`, both closed at the end. */
async function startStack(t: Test, origins: string[]) {
  const emulator = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [{ name: USERNAME, token: TOKEN, contexts: null }],
    seed: SEEDED,
    port: 0,
  })
  t.teardown(() => emulator.close())
  const policy = await makePolicy(t, { gateway: { cors: { origins }, docs: { swaggerUi: true } } })
  return startGateway(t, { policy, upstreamUrl: emulator.url })
}

t.test(
  'a CRM page on another origin lists, creates, re-lists and revalidates through the gateway',
  async (t) => {
    const crm = await startCrmPage()
    t.teardown(() => crm.close())
    const stranger = await startCrmPage()
    t.teardown(() => stranger.close())
    const gw = await startStack(t, [crm.origin])
    t.not(new URL(crm.origin).origin, new URL(gw.url).origin, 'the page is cross-origin to the gateway')
    const config: CrmConfig = { gateway: gw.url, username: USERNAME, token: TOKEN }
    crm.configure(config)
    stranger.configure(config)

    const context = await launchChromium(t)
    if (!context) return
    const page = await context.newPage()
    const pageErrors: string[] = []
    page.on('pageerror', (err) => pageErrors.push(err.message))
    await page.goto(`${crm.origin}/crm.html`)

    const first = await page.evaluate(() => (globalThis as unknown as CrmGlobal).crm.list())
    t.equal(first.status, 200, 'listing through CORS with Bearer + X-Trisul-Username')
    t.equal((first.body as Customer[]).length, SEEDED, 'the seeded customers')
    t.equal(first.xCache, 'MISS', 'exposed X-Cache is readable by the page')
    t.match(first.etag, /^(W\/)?".+"$/, 'exposed ETag is readable by the page')
    t.ok(first.requestId, 'exposed X-Request-Id is readable by the page')
    t.ok(first.rateLimitRemaining, 'exposed RateLimit-Remaining is readable by the page')

    const customer = { UserID: 'W3b001', Name: 'Browser Customer', Email: 'web@example.com' }
    const created = await page.evaluate((c) => (globalThis as unknown as CrmGlobal).crm.create(c), customer)
    t.equal(created.status, 200, `create: ${JSON.stringify(created.body)}`)
    t.match(created.body, { ...customer, id: Number })

    const second = await page.evaluate(() => (globalThis as unknown as CrmGlobal).crm.list())
    t.equal(second.status, 200)
    t.equal(second.xCache, 'HIT', 'the write was applied to the cached listing (SPEC 19)')
    const ids = (second.body as Customer[]).map((c) => c.UserID)
    t.equal(ids.length, SEEDED + 1)
    t.ok(ids.includes(customer.UserID), 'the new customer is in the next listing')
    t.not(second.etag, first.etag, 'a new listing, a new ETag')
    t.equal(
      await page.locator(`#customers li[data-user-id="${customer.UserID}"]`).textContent(),
      'Browser Customer (W3b001)',
      'and the page renders it',
    )

    const revalidated = await page.evaluate(
      (etag) => (globalThis as unknown as CrmGlobal).crm.list('', etag),
      second.etag,
    )
    t.equal(revalidated.status, 304, 'If-None-Match with the current ETag: the page sees 304')
    t.equal(revalidated.etag, second.etag)
    t.equal(revalidated.xCache, 'HIT')

    const stale = await page.evaluate(
      (etag) => (globalThis as unknown as CrmGlobal).crm.list('', etag),
      first.etag,
    )
    t.equal(stale.status, 200, 'an outdated ETag gets the listing')

    const filtered = await page.evaluate(() =>
      (globalThis as unknown as CrmGlobal).crm.list('?q=browser&limit=5'),
    )
    t.equal(filtered.status, 200)
    t.equal(filtered.total, '1', 'exposed X-Total-Count is readable by the page')
    t.same(
      (filtered.body as Customer[]).map((c) => c.UserID),
      [customer.UserID],
    )

    // The same script from an origin the policy does not list: the browser refuses.
    const other = await context.newPage()
    await other.goto(`${stranger.origin}/crm.html`)
    const refused = await other.evaluate(() =>
      (globalThis as unknown as CrmGlobal).crm.list().then(
        (r: PageResult) => `answered ${r.status}`,
        (err: unknown) => (err instanceof TypeError ? 'TypeError' : String(err)),
      ),
    )
    t.equal(refused, 'TypeError', 'fetch from an unlisted origin fails (CORS)')

    t.same(pageErrors, [], 'no script errors on the page')
  },
)

t.test('Swagger UI at /docs loads, authorizes and runs "Try it out" on the listing', async (t) => {
  const gw = await startStack(t, [])
  const context = await launchChromium(t)
  if (!context) return
  const page = await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  await page.goto(`${gw.url}/docs`)
  await page.locator('.swagger-ui .info .title').filter({ hasText: 'ipdr-gateway' }).waitFor()

  // The Authorize dialog: credential form 2 (the Trisul token as bearer + the username header).
  await page.locator('button.authorize').first().click()
  const dialog = page.locator('.modal-ux')
  const token = dialog.locator('.auth-container').filter({ hasText: 'trisulToken' })
  await token.locator('input').fill(TOKEN)
  await token.locator('button[type=submit]').click()
  const user = dialog.locator('.auth-container').filter({ hasText: 'trisulUsername' })
  await user.locator('input').fill(USERNAME)
  await user.locator('button[type=submit]').click()
  await dialog.locator('.close-modal').click()

  const operation = page.locator('#operations-customers-listCustomers')
  await operation.locator('.opblock-summary').click()
  await operation.locator('button.try-out__btn').click()
  await operation.locator('button.execute').click()
  const status = operation.locator('.live-responses-table .response .response-col_status').first()
  await status.waitFor()
  t.equal((await status.textContent())?.trim(), '200', 'the listing answered 200 in Swagger UI')
  const shown = (await operation.locator('.live-responses-table').textContent()) ?? ''
  const listing = (await (
    await fetch(`${gw.url}/api/ipdrcustomers`, {
      headers: { authorization: `Bearer ${TOKEN}`, 'x-trisul-username': USERNAME },
    })
  ).json()) as Customer[]
  t.equal(listing.length, SEEDED)
  for (const c of listing) t.ok(shown.includes(c.UserID), `Swagger UI shows ${c.UserID}`)
  t.match(shown, /x-cache: (MISS|HIT)/i, 'and the gateway headers')
  const curl = (await operation.locator('.curl-command').textContent()) ?? ''
  t.match(curl, /Authorization: Bearer /, 'sent with the Authorization header from the dialog')
  t.match(curl, new RegExp(`X-Trisul-Username: ${USERNAME}`), 'and X-Trisul-Username')
  t.same(pageErrors, [], 'no script errors in Swagger UI')
})
