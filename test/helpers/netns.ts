import {type ChildProcess, execFile, spawn, type SpawnOptions, spawnSync} from 'node:child_process'
import os from 'node:os'

/**
 * Network namespaces for fault tests (root only; see netnsSupport()).
 *
 * createNetns() makes a namespace joined to this one by a veth pair on a /30
 * of its own in 10.200.0.0/16: the host side carries hostIp, the namespace
 * side nsIp. A process started with exec() runs inside and reaches this
 * machine only at hostIp (put a tcp-proxy there in front of a server on
 * 127.0.0.1). Faults are iptables rules in a chain of the namespace's own,
 * jumped to only for traffic on its host-side veth, so they touch nothing
 * else: cut() drops every packet both ways (a silent partition: no RST, open
 * connections hang; cut({port}) only one port's), loss(p) drops each packet
 * with probability p. tracesOf(pid) lists what a process has on the machine.
 *
 * Names carry the owning process's pid (base 36): namespace
 * rvxt-<pid>-<n>, veth rvxt<pid>-<n>h / -<n>p, chain RVXT-<pid>-<n>.
 * Whatever this process made is removed by destroy(), at exit (synchronously),
 * and on SIGINT/SIGTERM; the first createNetns() of a process removes what a
 * process that no longer exists left behind (one killed by SIGKILL), never
 * what a live one (another test run on this machine) is using.
 */

export interface Netns {
  /** The namespace, for `ip netns exec <name>`. */
  readonly name: string
  /** This machine's address on the veth: what processes inside connect to. */
  readonly hostIp: string
  /** The namespace's address: what this machine sees them come from. */
  readonly nsIp: string
  /** The host-side veth interface. */
  readonly hostVeth: string
  /** The iptables chain holding this namespace's fault rules. */
  readonly chain: string
  /** Spawns `command args` inside the namespace, as root (`ip netns exec`; a uid option would stop ip itself). Killed by destroy(). */
  exec(command: string, args?: string[], options?: SpawnOptions): ChildProcess
  /**
   * Drops every packet both ways on the veth until restore(); with `port`, only TCP to and from that port of
   * hostIp (one service of this machine, a proxy, while the rest stays reachable). A cut while cut adds to it.
   */
  cut(options?: {port?: number}): Promise<void>
  /** Undoes every cut(); loss() stays. */
  restore(): Promise<void>
  /** Drops each packet, each way, with this probability (0 < p < 1), replacing an earlier loss(). */
  loss(probability: number): Promise<void>
  /** Removes every fault rule (cut and loss). */
  clearRules(): Promise<void>
  /** Kills what runs inside, removes the rules, the chain, the veth and the namespace. Safe to call twice. */
  destroy(): Promise<void>
}

const PREFIX = 'rvxt'
const OWNER = process.pid.toString(36)
const HOOKS = [
  ['INPUT', '-i'],
  ['OUTPUT', '-o'],
  ['FORWARD', '-i'],
  ['FORWARD', '-o'],
] as const

const NETNS = /^(rvxt-([0-9a-z]+)-[0-9a-z]+)\b/
const VETH = /^\d+: (rvxt([0-9a-z]+)-\d+[hp])[@:]/
const CHAIN = /^-N (RVXT-([0-9a-z]+)-\d+)$/

const live = new Map<string, {hostVeth: string; chain: string; addresses: string[]; children: Set<ChildProcess>}>()
let counter = 0
let swept = false

let support: string | null | undefined

/**
 * Null when this process can make namespaces and iptables rules, else why not (for `this.skip()` with the reason
 * printed). It tries: a namespace made and deleted at once, and a read of iptables.
 */
export function netnsSupport(): string | null {
  support ??= probe()
  return support
}

function probe(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root (run the tests as root)'
  const name = `${PREFIX}-${OWNER}-probe`
  const made = spawnSync('ip', ['netns', 'add', name], {encoding: 'utf8'})
  if (made.error) return `\`ip\` cannot be run (${made.error.message}): apt-get install iproute2`
  spawnSync('ip', ['netns', 'delete', name])
  if (made.status !== 0) return `\`ip netns add\` fails here (${made.stderr.trim()}): network namespaces need CAP_SYS_ADMIN`
  const iptables = spawnSync('iptables', ['-w', '-S', 'INPUT'], {encoding: 'utf8'})
  if (iptables.error) return `iptables cannot be run (${iptables.error.message}): apt-get install iptables`
  if (iptables.status !== 0) return `iptables fails here (${iptables.stderr.trim()})`
  return null
}

/** Every namespace, veth and chain on this machine that the process with this pid made (default: this one). */
export function tracesOf(pid = process.pid): string[] {
  const owner = pid.toString(36)
  const mine = (match: RegExpMatchArray | null) => (match && match[2] === owner ? [match[1]] : [])
  return [
    ...quiet('ip', ['netns', 'list'])
      .split('\n')
      .flatMap((line) => mine(line.match(NETNS))),
    ...quiet('ip', ['-o', 'link', 'show'])
      .split('\n')
      .flatMap((line) => mine(line.match(VETH))),
    ...quiet('iptables', ['-w', '-S'])
      .split('\n')
      .flatMap((line) => mine(line.match(CHAIN))),
  ]
}

/** Addresses of the veths this process made (both ends): the only non-loopback addresses a test may send to. */
export function ownAddresses(): string[] {
  return [...live.values()].flatMap((entry) => entry.addresses)
}

export async function createNetns(): Promise<Netns> {
  if (!swept) {
    swept = true
    removeLeftovers()
  }

  const n = counter++
  const name = `${PREFIX}-${OWNER}-${n}`
  const hostVeth = `${PREFIX}${OWNER}-${n}h`
  const nsVeth = `${PREFIX}${OWNER}-${n}p`
  const chain = `RVXT-${OWNER}-${n}`
  if (hostVeth.length > 15) throw new Error(`interface name ${hostVeth} is longer than 15 characters: too many namespaces in one process`)
  const [hostIp, nsIp] = freeSubnet()
  const children = new Set<ChildProcess>()
  live.set(name, {hostVeth, chain, addresses: [hostIp, nsIp], children})

  try {
    await run('ip', ['netns', 'add', name])
    await run('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth, 'netns', name])
    await run('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostVeth])
    await run('ip', ['link', 'set', hostVeth, 'up'])
    await run('ip', ['-n', name, 'addr', 'add', `${nsIp}/30`, 'dev', nsVeth])
    await run('ip', ['-n', name, 'link', 'set', nsVeth, 'up'])
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    await run('iptables', ['-w', '-N', chain])
    // Inserted first, so no earlier ACCEPT of the machine's own rules lets a cut packet through.
    for (const [hook, direction] of HOOKS) await run('iptables', ['-w', '-I', hook, '1', direction, hostVeth, '-j', chain])
  } catch (error) {
    removeSync(name)
    throw error
  }

  const rule = (args: string[]) => run('iptables', ['-w', ...args])
  let lossRule: string[] | null = null
  const cutRules: string[][] = []
  return {
    name,
    hostIp,
    nsIp,
    hostVeth,
    chain,
    exec(command, args = [], options = {}) {
      if (!live.has(name)) throw new Error(`namespace ${name} was destroyed`)
      const child = spawn('ip', ['netns', 'exec', name, command, ...args], options)
      children.add(child)
      child.once('exit', () => children.delete(child))
      return child
    },
    async cut({port} = {}) {
      const rules = port === undefined ? [['-j', 'DROP']] : ['--dport', '--sport'].map((match) => ['-p', 'tcp', match, String(port), '-j', 'DROP'])
      for (const spec of rules) {
        await rule(['-I', chain, '1', ...spec])
        cutRules.push(spec)
      }
    },
    async restore() {
      for (const spec of cutRules.splice(0)) await rule(['-D', chain, ...spec])
    },
    async loss(probability) {
      if (!(probability > 0 && probability < 1)) throw new Error(`loss probability must be between 0 and 1 (got ${probability})`)
      if (lossRule) await rule(['-D', chain, ...lossRule])
      lossRule = ['-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP']
      await rule(['-A', chain, ...lossRule])
    },
    async clearRules() {
      lossRule = null
      cutRules.length = 0
      await rule(['-F', chain])
    },
    async destroy() {
      removeSync(name)
    },
  }
}

/**
 * A /30 in 10.200.0.0/16 on no interface of this machine: host side .1, namespace side .2. The search starts at a
 * place derived from the pid, so test processes running side by side rarely even look at the same subnets.
 */
function freeSubnet(): [string, string] {
  const used = new Set([...quiet('ip', ['-o', '-4', 'addr', 'show']).matchAll(/ inet (10\.200\.\d+\.\d+)\//g)].map((m) => m[1]))
  for (const entry of live.values()) for (const address of entry.addresses) used.add(address)
  const start = (process.pid * 8) % 16_384
  for (let i = 0; i < 16_384; i++) {
    const base = ((start + i) % 16_384) * 4
    const [hostIp, nsIp] = [1, 2].map((host) => `10.200.${base >> 8}.${(base & 255) + host}`)
    if (!used.has(hostIp) && !used.has(nsIp)) return [hostIp, nsIp]
  }

  throw new Error('every /30 of 10.200.0.0/16 is in use on this machine')
}

async function run(command: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(command, args, {timeout: 30_000}, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${String(stderr).trim() || error.message}`))
      else resolve()
    })
  })
}

function quiet(command: string, args: string[]): string {
  return spawnSync(command, args, {encoding: 'utf8', timeout: 30_000}).stdout ?? ''
}

/** Removes one namespace of this process and everything of it; synchronous, so exit handlers can call it. */
function removeSync(name: string): void {
  const entry = live.get(name)
  if (!entry) return
  live.delete(name)
  for (const child of entry.children) child.kill('SIGKILL')
  removeNamespaceSync(name, entry.hostVeth, entry.chain)
}

function removeNamespaceSync(name: string | null, hostVeth: string | null, chain: string | null): void {
  if (chain) removeChainSync(chain)
  if (name) {
    for (const pid of quiet('ip', ['netns', 'pids', name]).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // already gone
      }
    }

    quiet('ip', ['netns', 'delete', name])
  }

  // Deleting the namespace takes its end of the pair, and with it ours; a veth left without a namespace goes here.
  if (hostVeth) quiet('ip', ['link', 'delete', hostVeth])
}

function removeChainSync(chain: string): void {
  for (const line of quiet('iptables', ['-w', '-S']).split('\n')) {
    const jump = line.match(/^-A (INPUT|OUTPUT|FORWARD) (.*) -j (\S+)$/)
    if (jump && jump[3] === chain) quiet('iptables', ['-w', '-D', jump[1], ...jump[2].split(' '), '-j', chain])
  }

  quiet('iptables', ['-w', '-F', chain])
  quiet('iptables', ['-w', '-X', chain])
}

function ownerGone(owner: string): boolean {
  const pid = Number.parseInt(owner, 36)
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/** Removes namespaces, veths and chains of the rvxt prefix whose owning process no longer exists. */
export function removeLeftovers(): void {
  for (const line of quiet('ip', ['netns', 'list']).split('\n')) {
    const match = line.match(NETNS)
    if (match && ownerGone(match[2])) removeNamespaceSync(match[1], null, null)
  }

  for (const line of quiet('ip', ['-o', 'link', 'show']).split('\n')) {
    const match = line.match(VETH)
    if (match && ownerGone(match[2])) quiet('ip', ['link', 'delete', match[1]])
  }

  for (const line of quiet('iptables', ['-w', '-S']).split('\n')) {
    const match = line.match(CHAIN)
    if (match && ownerGone(match[2])) removeChainSync(match[1])
  }
}

function removeAllSync(): void {
  for (const name of [...live.keys()]) removeSync(name)
}

process.on('exit', removeAllSync)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    removeAllSync()
    // test/setup.ts exits on these signals too; alone, end the process as the signal would have.
    if (process.listenerCount(signal) === 0) process.exit(128 + os.constants.signals[signal])
  })
}
