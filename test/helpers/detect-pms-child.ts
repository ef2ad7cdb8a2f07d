/**
 * detect_pms, then fetch_page, on RVX_TEST_PMS_URL in a process of its own,
 * for tests that must see whether reading a page blocks the event loop
 * without blocking the test runner: SIGUSR2 is answered with "pong" from the
 * event loop (a worker's heartbeat stand-in); the results are printed as
 * "pms {json}" and "text {json}" lines.
 */
import {detectPms} from '../../src/agents/tools/detect-pms.js'
import {fetchPage} from '../../src/agents/tools/fetch-page.js'

const url = process.env.RVX_TEST_PMS_URL!
process.on('SIGUSR2', () => process.stdout.write('pong\n'))
const pms = await detectPms('hostile.example', {baseUrl: url, allowPrivate: true})
process.stdout.write(`pms ${JSON.stringify(pms)}\n`)
const page = await fetchPage(url, {allowPrivate: true})
process.stdout.write(`text ${JSON.stringify(page.text)}\n`)
// Stay up (answering pings) until the test is done with this process.
setInterval(() => {}, 60_000)
