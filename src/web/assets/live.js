// Keeps a dashboard page live: follows the Server-Sent Events stream named in
// <body data-live> and puts each region the server sends (HTML it rendered and
// escaped) in place of the element with that id. Open <details> stay open.
// Served as a file: the page's CSP allows no inline script.
;(function () {
  const url = document.body.dataset.live
  if (!url || typeof EventSource === 'undefined') return
  const status = () => document.getElementById('live-status')
  const source = new EventSource(url)

  source.addEventListener('regions', (event) => {
    const regions = JSON.parse(event.data)
    for (const [id, content] of Object.entries(regions)) {
      const element = document.getElementById(id)
      if (!element) continue
      const open = new Set(Array.from(element.querySelectorAll('details[open][data-key]'), (d) => d.dataset.key))
      element.innerHTML = content
      for (const d of element.querySelectorAll('details[data-key]')) if (open.has(d.dataset.key)) d.open = true
    }
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1)
  })

  source.addEventListener('error', () => {
    const s = status()
    if (s) s.textContent = source.readyState === EventSource.CLOSED ? 'live updates stopped: reload the page' : 'reconnecting...'
  })
})()
