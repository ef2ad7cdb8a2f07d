import fs from 'node:fs'

/**
 * Reading a file someone named (a criteria file, a CRM export, a price
 * table) whatever it turns out to be: a regular file is refused by its size
 * before it is read (a sparse 1 GB file too); a device, pipe or FIFO is read
 * up to the limit and refused past it (/dev/zero); a FIFO whose writer sends
 * nothing is given up after `timeoutMs`, and one with no writer at all reads
 * as empty (it is opened without blocking). The message says what was wrong
 * about the file, for the caller to put after its name.
 */
export class ReadLimitError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ReadLimitError'
  }
}

export interface ReadLimits {
  maxBytes: number
  /** For what can block (a pipe or FIFO): how long the whole read may take. */
  timeoutMs: number
}

const CHUNK = 64 * 1024
const POLL_MS = 20
const pause = new Int32Array(new SharedArrayBuffer(4))

/** "64 MB", "512 KB": a limit as people read it. */
export function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MB` : `${Math.round(bytes / 1024)} KB`
}

/** The file's bytes within the limits (synchronous: a read at start-up, before anything else runs). Errors from the file system pass through. */
export function readFileBounded(file: string, limits: ReadLimits): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  try {
    const stat = fs.fstatSync(fd)
    if (stat.isFile() && stat.size > limits.maxBytes)
      throw new ReadLimitError(`is ${formatBytes(stat.size)}, over the limit of ${formatBytes(limits.maxBytes)}`)
    const deadline = Date.now() + limits.timeoutMs
    const chunks: Buffer[] = []
    let total = 0
    const buffer = Buffer.alloc(CHUNK)
    for (;;) {
      let n: number
      try {
        n = fs.readSync(fd, buffer, 0, CHUNK, null)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error
        n = -1
      }

      if (n === 0) break
      if (n > 0) {
        total += n
        if (total > limits.maxBytes) throw new ReadLimitError(`is longer than the limit of ${formatBytes(limits.maxBytes)}`)
        chunks.push(Buffer.from(buffer.subarray(0, n)))
      }

      if (Date.now() > deadline) throw new ReadLimitError(`did not finish within ${limits.timeoutMs / 1000} s (a pipe or FIFO whose writer stalled?)`)
      if (n < 0) Atomics.wait(pause, 0, 0, POLL_MS)
    }

    return Buffer.concat(chunks)
  } finally {
    fs.closeSync(fd)
  }
}

/** A stream's bytes (standard input) up to the limit; past it the stream is let go and the read refused. */
export async function readStreamBounded(stream: NodeJS.ReadableStream, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of stream) {
    const buffer = Buffer.from(chunk as Buffer)
    total += buffer.byteLength
    if (total > maxBytes) {
      ;(stream as NodeJS.ReadableStream & {destroy?: () => void}).destroy?.()
      throw new ReadLimitError(`is longer than the limit of ${formatBytes(maxBytes)}`)
    }

    chunks.push(buffer)
  }

  return Buffer.concat(chunks)
}
