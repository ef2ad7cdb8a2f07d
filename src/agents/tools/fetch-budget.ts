import {PermanentError} from '../../runtime/errors.js'

/**
 * What one agent call may fetch in all: requests (each redirect hop and each
 * page detect_pms reads counts) and body bytes. A fetch beyond it fails with
 * a message the model can act on, so a looping model stops costing traffic.
 */
export class FetchBudget {
  private requests = 0
  private bytes = 0

  constructor(
    readonly maxRequests: number,
    readonly maxBytes: number,
  ) {}

  /** Before each request: counts it, or refuses it when the budget is spent. */
  take(url: string): void {
    if (this.requests >= this.maxRequests || this.bytes >= this.maxBytes) {
      const spent = this.requests >= this.maxRequests ? `${this.maxRequests} requests` : `${this.maxBytes} bytes`
      throw new PermanentError(`not fetching ${url}: this research step has spent its fetch budget (${spent}); answer with what you have`)
    }

    this.requests++
  }

  /** The most a body may still add. */
  remainingBytes(): number {
    return Math.max(0, this.maxBytes - this.bytes)
  }

  spend(bytes: number): void {
    this.bytes += bytes
  }

  get used(): {requests: number; bytes: number} {
    return {requests: this.requests, bytes: this.bytes}
  }
}
