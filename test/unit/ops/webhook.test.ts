import { channel } from 'node:diagnostics_channel'
import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { HealthChangeMessage } from '../../../src/health/sync.ts'
import { createLogger } from '../../../src/log.ts'
import { startWebhooks, type WebhookEvent, type Webhooks } from '../../../src/ops/webhook.ts'

const health = channel('gslb:health:change')
const change = (endpoint: string, up: boolean): HealthChangeMessage => ({
  zone: 'example.com',
  pool: 'eu',
  endpoint,
  up,
  reason: up ? 'check ok from local' : 'check failed from local: timeout',
  generation: 1,
})

let server: Server | undefined
let hooks: Webhooks | undefined
afterEach(() => {
  hooks?.stop()
  server?.close()
})

/** A receiver on 127.0.0.1 that fails the first `failures` requests with 500. */
async function receiver(failures: number): Promise<{ url: string; got: WebhookEvent[]; hits: () => number }> {
  const got: WebhookEvent[] = []
  let hits = 0
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => {
      body += d.toString()
    })
    req.on('end', () => {
      hits++
      if (hits <= failures) {
        res.writeHead(500).end()
        return
      }
      got.push(JSON.parse(body) as WebhookEvent)
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, got, hits: () => hits }
}

describe('webhooks on health changes', () => {
  it('posts endpoint changes and whole-pool down/up events, in order', async () => {
    const r = await receiver(0)
    hooks = startWebhooks({
      urls: [r.url],
      instance: 'dns1',
      log: createLogger('silent'),
      poolSize: () => 2,
      retryMs: 10,
    })
    health.publish(change('eu-1', false))
    health.publish(change('eu-2', false))
    health.publish(change('eu-1', true))
    await hooks.idle()
    expect(r.got.map((e) => `${e.type} ${e.endpoint ?? e.pool}`)).toEqual([
      'endpoint_down eu-1',
      'endpoint_down eu-2',
      'pool_down eu',
      'endpoint_up eu-1',
      'pool_up eu',
    ])
    expect(r.got[0]).toMatchObject({
      zone: 'example.com',
      instance: 'dns1',
      reason: 'check failed from local: timeout',
    })
    expect(hooks.stats()).toEqual({ delivered: 5, failed: 0, dropped: 0 })
  })

  it('retries a failing receiver with backoff until it accepts', async () => {
    const r = await receiver(2)
    hooks = startWebhooks({
      urls: [r.url],
      instance: 'dns1',
      log: createLogger('silent'),
      poolSize: () => 5,
      retryMs: 10,
    })
    health.publish(change('eu-1', false))
    await hooks.idle()
    expect(r.hits()).toBe(3)
    expect(r.got).toHaveLength(1)
    expect(hooks.stats()).toMatchObject({ delivered: 1, failed: 0 })
  })

  it('gives up after the attempts and counts the event as failed', async () => {
    const r = await receiver(100)
    hooks = startWebhooks({
      urls: [r.url],
      instance: 'dns1',
      log: createLogger('silent'),
      poolSize: () => 5,
      retryMs: 5,
      attempts: 3,
    })
    health.publish(change('eu-1', false))
    await hooks.idle()
    expect(r.hits()).toBe(3)
    expect(hooks.stats()).toMatchObject({ delivered: 0, failed: 1 })
  })
})
