import assert from 'node:assert/strict'
import {type ChildProcess, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import readline from 'node:readline'
import pg from 'pg'

import {ROOT} from '../helpers/cli.js'
import {adminUrl, createDatabase, dropDatabase, urlFor} from '../helpers/db.js'
import {createNetns, type Netns, netnsSupport, removeLeftovers, tracesOf} from '../helpers/netns.js'
import {spawnCli, spawnScript, waitFor} from '../helpers/processes.js'
import {removeStandbyLeftovers, StandbyPair} from '../helpers/standby.js'
import {TcpProxy} from '../helpers/tcp-proxy.js'

/** The fault harness the fleet's partition, slow-link and failover tests stand on, each piece shown doing what it claims. */

function serverTarget(): {host: string; port: number} {
  const url = new URL(adminUrl())
  return {host: url.hostname, port: Number(url.port)}
}

function through(proxy: TcpProxy, url = adminUrl()): string {
  const u = new URL(url)
  u.hostname = proxy.host
  u.port = String(proxy.port)
  return u.toString()
}

/** An echo server that prefixes each answer with its name, so a test sees which one a proxy reached. */
async function echoServer(name: string): Promise<net.Server & {port: number}> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.on('data', (chunk) => socket.write(name === '' ? chunk : Buffer.concat([Buffer.from(name), chunk])))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return Object.assign(server, {port: (server.address() as net.AddressInfo).port})
}

/** Sends one line on a socket through the proxy and returns what comes back first. */
async function exchange(port: number, text: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1')
  try {
    socket.write(text)
    return await new Promise<string>((resolve, reject) => {
      socket.once('data', (data) => resolve(String(data)))
      socket.once('error', reject)
    })
  } finally {
    socket.destroy()
  }
}

/** Whether a server answers a login at this URL (bounded). */
async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({connectionString: url, connectionTimeoutMillis: 5000})
  client.on('error', () => {})
  try {
    await client.connect()
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}

describe('net: the fault harness (namespaces, tcp-proxy, standby)', function () {
  this.timeout(120_000)

  describe('tcp-proxy', () => {
    const closers: Array<() => Promise<unknown> | unknown> = []
    afterEach(async () => {
      for (const close of closers.splice(0)) await close()
    })

    it('adds its delay each way to a round trip', async () => {
      const proxy = await TcpProxy.start({target: serverTarget(), up: {ms: 40}, down: {ms: 40}})
      closers.push(() => proxy.close())
      const client = new pg.Client({connectionString: through(proxy), connectionTimeoutMillis: 10_000, query_timeout: 10_000})
      await client.connect()
      closers.push(() => client.end())
      const started = performance.now()
      await client.query('select 1')
      const ms = performance.now() - started
      assert.ok(ms >= 80, `a round trip through 40 ms each way took ${ms.toFixed(1)} ms`)
      const counters = proxy.counters()
      assert.equal(counters.accepted, 1)
      assert.ok(counters.bytesUp > 0 && counters.bytesDown > 0, JSON.stringify(counters))
    })

    it('keeps every byte in order under jitter', async () => {
      const echo = await echoServer('')
      closers.push(() => echo.close())
      const proxy = await TcpProxy.start({target: {host: '127.0.0.1', port: echo.port}, up: {ms: 20, jitterMs: 20}, down: {ms: 20, jitterMs: 20}})
      closers.push(() => proxy.close())
      const socket = net.connect(proxy.port, '127.0.0.1')
      socket.setNoDelay(true)
      closers.push(() => socket.destroy())
      const sent = Buffer.alloc(4 * 300)
      const received: Buffer[] = []
      socket.on('data', (chunk) => received.push(chunk))
      for (let i = 0; i < 300; i++) {
        sent.writeUInt32BE(i, i * 4)
        socket.write(sent.subarray(i * 4, i * 4 + 4))
        // Separate chunks, each with its own random delay: without ordering, later ones would overtake earlier ones.
        if (i % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
      }

      await waitFor('the echo of every byte', async () => Buffer.concat(received).length >= sent.length, 10_000, 20)
      assert.ok(Buffer.concat(received).equals(sent), 'bytes came back out of order')
    })

    it('passes a close on only after the bytes it still holds', async () => {
      const echo = await echoServer('')
      closers.push(() => echo.close())
      const proxy = await TcpProxy.start({target: {host: '127.0.0.1', port: echo.port}, down: {ms: 100}})
      closers.push(() => proxy.close())
      const socket = net.connect(proxy.port, '127.0.0.1')
      closers.push(() => socket.destroy())
      let received = ''
      socket.on('data', (chunk) => (received += chunk))
      const ended = new Promise((resolve) => socket.once('end', resolve))
      // The echo server answers and closes at once; the answer is still held in the proxy when the close reaches it.
      socket.end('last words')
      await ended
      assert.equal(received, 'last words')
      await waitFor('the link to be gone', async () => proxy.counters().open === 0, 5000, 20)
    })

    it('freeze() holds traffic and new connections until thaw(); cutAll() resets; retarget() moves new connections only', async () => {
      const proxy = await TcpProxy.start({target: serverTarget()})
      closers.push(() => proxy.close())
      const client = new pg.Client({connectionString: through(proxy), connectionTimeoutMillis: 10_000, query_timeout: 10_000})
      client.on('error', () => {})
      await client.connect()

      proxy.freeze()
      const held = client.query<{n: number}>('select 7 as n')
      const outcome = await Promise.race([held.then(() => 'answered'), new Promise((resolve) => setTimeout(resolve, 600, 'held'))])
      assert.equal(outcome, 'held')
      const newcomer = new pg.Client({connectionString: through(proxy), connectionTimeoutMillis: 500})
      newcomer.on('error', () => {})
      await assert.rejects(newcomer.connect(), /timeout/i)
      proxy.thaw()
      assert.equal((await held).rows[0].n, 7)

      // Open: the client's, and the newcomer's, whose close thaw() passes on as it would any other held bytes.
      const open = proxy.counters().open
      assert.ok(open >= 1)
      proxy.cutAll()
      await assert.rejects(client.query('select 1'))
      assert.deepEqual([proxy.counters().cut, proxy.counters().open], [open, 0])

      const [x, y] = [await echoServer('x:'), await echoServer('y:')]
      closers.push(
        () => x.close(),
        () => y.close(),
      )
      const echo = await TcpProxy.start({target: {host: '127.0.0.1', port: x.port}})
      closers.push(() => echo.close())
      const before = net.connect(echo.port, '127.0.0.1')
      closers.push(() => before.destroy())
      const firstAnswer = new Promise<string>((resolve) => before.once('data', (d) => resolve(String(d))))
      before.write('1')
      assert.equal(await firstAnswer, 'x:1')
      echo.retarget('127.0.0.1', y.port)
      assert.equal(await exchange(echo.port, '2'), 'y:2')
      const secondAnswer = new Promise<string>((resolve) => before.once('data', (d) => resolve(String(d))))
      before.write('3')
      assert.equal(await secondAnswer, 'x:3')
    })

    it('forwards only to loopback or to its own veth addresses', async () => {
      await assert.rejects(TcpProxy.start({target: {host: '192.0.2.1', port: 5432}}), /only to loopback/)
      const proxy = await TcpProxy.start({target: serverTarget()})
      closers.push(() => proxy.close())
      assert.throws(() => proxy.retarget('10.200.0.1', 5432), /only to loopback/)
    })
  })

  describe('network namespaces', () => {
    let ns: Netns | undefined
    let proxy: TcpProxy | undefined
    let driver: ChildProcess | undefined
    let answers: AsyncIterator<string> | undefined

    before(async function () {
      const reason = netnsSupport()
      if (reason) {
        console.log(`      skipped: ${reason}`)
        this.skip()
      }

      ns = await createNetns()
      proxy = await TcpProxy.start({host: ns.hostIp, target: serverTarget()})
      driver = ns.exec(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/fixtures/net-client.ts')], {
        cwd: ROOT,
        env: {...process.env, RVX_TEST_NET_URL: through(proxy), RVX_TEST_NET_TIMEOUT_MS: '2000'},
        stdio: ['pipe', 'pipe', 'inherit'],
      })
      answers = readline.createInterface({input: driver.stdout!})[Symbol.asyncIterator]()
    })

    after(async () => {
      await proxy?.close()
      await ns?.destroy()
    })

    /** One command to the client inside the namespace, and its one-line answer (bounded). */
    async function send(command: string): Promise<string> {
      driver!.stdin!.write(command + '\n')
      const next = await Promise.race([
        answers!.next(),
        new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`no answer to ${command} within 90 s`)), 90_000).unref()),
      ])
      if (next.done) throw new Error(`the client in the namespace exited before answering ${command}`)
      return next.value
    }

    it('lets a client inside reach PostgreSQL through a proxy on the veth, from its own address', async () => {
      assert.match(await send('connect'), /^ok /)
      assert.deepEqual(proxy!.clientAddresses(), [ns!.nsIp])
    })

    it('cut() hangs an open connection and new ones; restore() lets a new connection through', async () => {
      assert.match(await send('connect'), /^ok /)
      await ns!.cut()
      assert.match(await send('query'), /^error .*timeout/i)
      assert.match(await send('connect'), /^error .*timeout/i)
      await ns!.restore()
      assert.match(await send('connect'), /^ok /)
      assert.match(await send('query'), /^ok /)
    })

    it('cut({port}) cuts one service of this machine and leaves the others reachable', async () => {
      const other = await TcpProxy.start({host: ns!.hostIp, target: serverTarget()})
      try {
        await ns!.cut({port: proxy!.port})
        assert.match(await send('connect'), /^error .*timeout/i)
        const probe = ns!.exec(process.execPath, [
          '-e',
          `require('net').connect(${other.port}, '${ns!.hostIp}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`,
        ])
        const code = await new Promise((resolve) => probe.once('exit', resolve))
        assert.equal(code, 0, 'the other port answers through the cut')
        await ns!.restore()
        assert.match(await send('connect'), /^ok /)
      } finally {
        await ns!.restore()
        await other.close()
      }
    })

    it('loss(0.05) drops packets both ways and queries still complete', async () => {
      await ns!.loss(0.05)
      try {
        assert.match(await send('connect 30000'), /^ok /)
        assert.match(await send('queries 100'), /^ok /)
        const rules = spawnSync('iptables', ['-w', '-L', ns!.chain, '-v', '-x', '-n'], {encoding: 'utf8'}).stdout
        const dropped = Number(
          rules
            .split('\n')
            .find((line) => line.includes('statistic'))
            ?.trim()
            .split(/\s+/)[0],
        )
        assert.ok(dropped > 0, `the loss rule dropped nothing:\n${rules}`)
      } finally {
        await ns!.clearRules()
      }

      assert.match(await send('connect'), /^ok /)
    })

    it('runs rvx inside the namespace (spawnCli with netns), reaching its database through the proxy', async () => {
      const name = await createDatabase('net')
      try {
        const accepted = proxy!.counters().accepted
        const migrate = spawnCli(['migrate', '--json'], {DATABASE_URL: through(proxy!, urlFor(name))}, {netns: ns})
        assert.equal((await migrate.exited).code, 0, migrate.stderr())
        assert.equal(JSON.parse(migrate.stdout()).pending, 0)
        assert.ok(proxy!.counters().accepted > accepted, 'rvx went through the proxy on the veth')
      } finally {
        await dropDatabase(name)
      }
    })

    it('destroy() removes the namespace, its veth and its chain, and ends what ran inside', async () => {
      const exited = new Promise((resolve) => driver!.once('exit', resolve))
      assert.deepEqual(tracesOf().sort(), [ns!.chain, ns!.name, ns!.hostVeth].sort())
      await ns!.destroy()
      await exited
      assert.deepEqual(tracesOf(), [])
    })

    it("takes a process's namespaces with it when it fails or is stopped, and sweeps those of a killed one at the next start", async () => {
      /** The child's pid once it said it has made its namespace. */
      const made = async (child: ReturnType<typeof spawnScript>) => {
        await waitFor('the namespace to be made', async () => child.stdout().includes('\n'), 60_000)
        assert.equal(tracesOf(child.child.pid).length, 3, 'a namespace, a veth, a chain')
        return child.child.pid!
      }

      const failing = spawnScript('test/fixtures/netns-process.ts', {RVX_TEST_NETNS_END: 'throw'})
      const failed = await made(failing)
      failing.child.kill('SIGUSR1')
      assert.notEqual((await failing.exited).code, 0)
      assert.deepEqual(tracesOf(failed), [])

      const stopped = spawnScript('test/fixtures/netns-process.ts', {})
      const stoppedPid = await made(stopped)
      stopped.child.kill('SIGTERM')
      assert.equal((await stopped.exited).code, 143)
      assert.deepEqual(tracesOf(stoppedPid), [])

      const killed = spawnScript('test/fixtures/netns-process.ts', {})
      const killedPid = await made(killed)
      killed.child.kill('SIGKILL')
      await killed.exited
      assert.equal(tracesOf(killedPid).length, 3, 'SIGKILL leaves everything behind')
      removeLeftovers()
      assert.deepEqual(tracesOf(killedPid), [])
    })
  })

  describe('standby', () => {
    let pair: StandbyPair | undefined

    before(async function () {
      this.timeout(120_000)
      pair = await StandbyPair.start()
    })

    after(async () => {
      await pair?.stop()
    })

    it('a failover after the stream froze loses exactly the commits made during the freeze', async () => {
      const options = {connectionTimeoutMillis: 10_000, query_timeout: 10_000}
      const client = new pg.Client({connectionString: pair!.url(), ...options})
      client.on('error', () => {})
      await client.connect()
      await client.query('create table events (id int primary key)')
      for (let id = 1; id <= 20; id++) await client.query('insert into events values ($1)', [id])
      await pair!.waitCaughtUp()

      pair!.replication.freeze()
      for (let id = 21; id <= 30; id++) await client.query('insert into events values ($1)', [id])
      assert.equal((await client.query('select count(*)::int as n from events')).rows[0].n, 30, 'the primary acknowledged all 30')
      const lag = await pair!.lag()
      assert.ok(lag.lagBytes !== null && lag.lagBytes > 0, JSON.stringify(lag))

      pair!.killPrimary()
      await assert.rejects(client.query('select 1'))
      await pair!.failover()

      const after = new pg.Client({connectionString: pair!.url(), ...options})
      await after.connect()
      try {
        const ids = (await after.query<{id: number}>('select id from events order by id')).rows.map((r) => r.id)
        assert.deepEqual(
          ids,
          Array.from({length: 20}, (_, i) => i + 1),
        )
        assert.equal((await after.query('select pg_is_in_recovery() as r')).rows[0].r, false)
        await after.query('insert into events values (21)')
      } finally {
        await after.end()
      }
    })

    it('goes with its process on SIGTERM, and is swept at the next start after SIGKILL', async () => {
      const started = async (child: ReturnType<typeof spawnScript>) => {
        const line = await waitFor('the pair to start', async () => child.stdout().split('\n')[0].trim(), 90_000, 100)
        return JSON.parse(line) as {dir: string; urls: string[]}
      }

      const stopped = spawnScript('test/fixtures/standby-process.ts', {})
      const first = await started(stopped)
      assert.equal(await answers(first.urls[0]), true)
      stopped.child.kill('SIGTERM')
      assert.equal((await stopped.exited).code, 143)
      assert.equal(fs.existsSync(first.dir), false)
      await waitFor('the orphaned servers to stop', async () => !(await answers(first.urls[0])) && !(await answers(first.urls[1])), 30_000)

      const killed = spawnScript('test/fixtures/standby-process.ts', {})
      const second = await started(killed)
      killed.child.kill('SIGKILL')
      await killed.exited
      assert.equal(await answers(second.urls[1]), true, 'SIGKILL leaves the servers running')
      await removeStandbyLeftovers()
      assert.equal(fs.existsSync(second.dir), false)
      await waitFor('the leftover servers to stop', async () => !(await answers(second.urls[0])) && !(await answers(second.urls[1])), 30_000)
    })

    it('stop() ends both servers and removes every file', async () => {
      const {dir} = pair!
      const urls = [pair!.primaryUrl(), pair!.standbyUrl()]
      await pair!.stop()
      assert.equal(fs.existsSync(dir), false)
      for (const url of urls) assert.equal(await answers(url), false)
    })
  })
})
