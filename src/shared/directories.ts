import {constants as fsConstants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'

import {RvxError} from './errors.js'

/**
 * Kernel pseudo filesystems by statfs type: they hold no files of ours, and
 * Node 20's recursive mkdir never returns under /proc (it spins a core).
 */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x1cd1, 'devpts'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0xde5e81e4, 'efivarfs'],
  [0x65735543, 'fusectl'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6e736673, 'nsfs'],
  [0xf97cff8c, 'selinuxfs'],
  [0x19800202, 'mqueue'],
])

/**
 * Why rvx could not create `dir` (if need be) and write files in it, as a
 * clause such as "/proc is on proc, a kernel pseudo filesystem"; undefined
 * when it can. Creates nothing: it looks at the nearest part of the path
 * that exists, which must be a directory, on a real filesystem, writable.
 */
export async function directoryProblem(dir: string): Promise<string | undefined> {
  // Each step goes one level up, so this ends at the root at the latest.
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    let stat
    try {
      stat = await fs.stat(at)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if ((code === 'ENOENT' || code === 'ENOTDIR') && path.dirname(at) !== at) continue
      return `${at} cannot be looked at (${code ?? (error as Error).message})`
    }

    if (!stat.isDirectory()) return `${at} is a file`
    const pseudo = PSEUDO_FILESYSTEMS.get(Number((await fs.statfs(at)).type))
    if (pseudo) return `${at} is on ${pseudo}, a kernel pseudo filesystem`
    try {
      await fs.access(at, fsConstants.W_OK | fsConstants.X_OK)
    } catch (error) {
      return `${at} is not writable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`
    }

    return undefined
  }
}

/**
 * Makes `dir` and its missing parents, one level at a time (never a
 * recursive mkdir, which hangs under /proc), once directoryProblem finds
 * nothing wrong; else an RvxError that says what is.
 */
export async function makeDirectory(dir: string, mode?: number): Promise<void> {
  const problem = await directoryProblem(dir)
  if (problem) throw new RvxError(problem, {code: 'directory_unusable'})
  const missing: string[] = []
  for (let at = path.resolve(dir); !(await isDirectory(at)); at = path.dirname(at)) missing.unshift(at)
  for (const at of missing) {
    await fs.mkdir(at, {mode}).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error
    })
  }
}

async function isDirectory(at: string): Promise<boolean> {
  return fs.stat(at).then(
    (s) => s.isDirectory(),
    () => false,
  )
}
