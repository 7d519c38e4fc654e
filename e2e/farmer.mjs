// An independent farmer for Sluice's proof-of-storage protocol, written from
// the specifications only (shared/spec/farmers.md, shared/spec/proofs.md, the
// seed text they name as the source of shapes, and the user docs for the
// node's flags), never from the node's Go code. It regenerates the seeded
// chunks, builds the Merkle trees and the proofs itself, and checks the real
// `sluice serve` binary against the spec: routes, shapes, messages, the
// challenge grid, expiry, the end of a contract and the farmer statistics.
//
// Started by run.sh after test.mjs; needs Node >= 20 and no npm package.
// Exit status 0 when every check passes; otherwise 1, with one FAIL line per
// check naming the request, what the spec expects and what came back.
//
// Environment:
//   SLUICE_BIN       the sluice binary (default e2e/.bin/sluice)
//   E2E_KEEP_TMP=1   keep the temp dir (node log, data) for inspection
//   E2E_VERBOSE=1    echo the node's log and every request as they come

import { spawn } from 'node:child_process'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SLUICE_BIN = process.env.SLUICE_BIN || path.join(HERE, '.bin', 'sluice')
const KEEP_TMP = process.env.E2E_KEEP_TMP === '1'
const VERBOSE = process.env.E2E_VERBOSE === '1'

// The node under test. The interval is short so that a run sees five
// challenge windows in about 15 s; a prototype contract lives for
// CHALLENGES challenges, so the run also sees contracts end. The chunk sizes
// are not multiples of the leaf size (short last leaf, promoted nodes) and
// one is smaller than leaves_per_challenge leaves.
const INTERVAL_S = 3
const CHALLENGES = 4
const CHUNK_SIZES = [2500, 32768, 100000]
const DEFAULT_CHUNK = 32768 // farmers.md: "default 32768 bytes"
const ASK_SIZE = CHUNK_SIZES.reduce((a, b) => a + b, 0)
// The address may hold exactly what the first two /chunk calls hand out, so
// that a later /chunk gets room only from a contract that expired.
const MAX_BYTES = DEFAULT_CHUNK + ASK_SIZE

const TOTAL_DEADLINE_MS = 90_000 // the whole run
const START_TIMEOUT_MS = 30_000 // the node answering /readyz
const HTTP_TIMEOUT_MS = 10_000
const POLL_MS = 100
const KILL_GRACE_MS = 5_000
const GRID_SLACK_MS = 400 // clock and latency allowance on due times
const STATUS_LIST_TIMEOUT_MS = 6_000 // the list is rebuilt every --status-refresh

const SPEC_F = 'farmers.md'
const SPEC_P = 'proofs.md'

// ---------------------------------------------------------------- reporting

let passed = 0
let failed = 0
const findings = []

function pass(label) {
  passed++
  console.log(`PASS: ${label}`)
}
function fail(label, detail) {
  failed++
  findings.push(`${label}: ${detail}`)
  console.log(`FAIL: ${label} — ${detail}`)
}
// A soft check: records the result and goes on.
function expect(cond, label, detail) {
  if (cond) pass(label)
  else fail(label, typeof detail === 'function' ? detail() : detail)
  return !!cond
}
// A hard check: the run cannot go on without it.
class Abort extends Error {}
function must(cond, label, detail) {
  if (expect(cond, label, detail)) return
  const e = new Abort(label)
  e.recorded = true
  throw e
}

const show = (v) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v)
  return s === undefined ? 'undefined' : s.length > 400 ? s.slice(0, 400) + '…' : s
}
const got = (r) => `${r.what} → ${r.status} ${show(r.text)}`

// ------------------------------------------------------------ the node process

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-farmer-e2e-'))
let node = null // {proc, log, exited}
let cleaning = null

function childEnv() {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLUICE_')) env[k] = v
  return env
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function tail(file, n = 25) {
  try {
    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n')
    return '\n    ' + lines.slice(-n).map((l) => l.slice(0, 400)).join('\n    ')
  } catch {
    return '(no log)'
  }
}

function startNode(port, attempt) {
  const log = path.join(tmp, `sluice-${attempt}.log`)
  const out = fs.createWriteStream(log)
  const dataDir = path.join(tmp, `data-${attempt}`)
  const args = [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--private-listen', '127.0.0.1:0',
    '--data-dir', dataDir,
    '--challenge-interval', `${INTERVAL_S}s`,
    '--challenges-per-contract', String(CHALLENGES),
    '--chunk-sizes', CHUNK_SIZES.join(','),
    '--max-bytes-per-address', String(MAX_BYTES),
    '--token-rate', '0', // this script sends bursts of checks on one token
    '--status-refresh', '500ms',
  ]
  const proc = spawn(SLUICE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  const child = { proc, log, exited: false, error: null }
  proc.on('exit', () => {
    child.exited = true
  })
  proc.on('error', (err) => {
    child.exited = true
    child.error = err
  })
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.pipe(out, { end: false })
    if (VERBOSE) readline.createInterface({ input: stream }).on('line', (l) => console.log(`[sluice] ${l}`))
  }
  return child
}

async function stopNode() {
  const c = node
  if (!c || c.exited || c.proc.exitCode !== null || c.proc.signalCode !== null) return
  const gone = new Promise((r) => c.proc.once('exit', r))
  c.proc.kill('SIGTERM')
  const timer = setTimeout(() => {
    if (!c.exited) c.proc.kill('SIGKILL')
  }, KILL_GRACE_MS)
  await Promise.race([gone, new Promise((r) => setTimeout(r, KILL_GRACE_MS + 2_000))])
  clearTimeout(timer)
}

function cleanup() {
  cleaning ??= (async () => {
    await stopNode()
    if (KEEP_TMP) console.log(`kept ${tmp}`)
    else fs.rmSync(tmp, { recursive: true, force: true })
  })()
  return cleaning
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Polls until fn() returns a value other than undefined/false, or fails
// with what() after ms.
async function until(ms, fn, what) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false && v !== null) return v
    if (Date.now() >= end) throw new Abort(`timed out after ${ms} ms waiting for ${what()}`)
    await sleep(POLL_MS)
  }
}

// Starts the node on a free port and waits for GET /readyz to answer 200.
// The port can be taken between freePort and the node's bind: retry then.
async function launch() {
  if (!fs.existsSync(SLUICE_BIN)) throw new Abort(`no sluice binary at ${SLUICE_BIN} (run e2e/run.sh)`)
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    node = startNode(port, attempt)
    const base = `http://127.0.0.1:${port}`
    const end = Date.now() + START_TIMEOUT_MS
    for (;;) {
      if (node.exited) break
      try {
        const r = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(1_000) })
        await r.arrayBuffer()
        if (r.status === 200) return base
      } catch {
        // not listening yet
      }
      if (Date.now() >= end) throw new Abort(`node not ready within ${START_TIMEOUT_MS} ms; log:${tail(node.log)}`)
      await sleep(POLL_MS)
    }
    if (attempt >= 3) throw new Abort(`node exited before it was ready (${node.error?.message ?? node.proc.exitCode}); log:${tail(node.log)}`)
  }
}

// ---------------------------------------------------------------------- HTTP

let BASE = ''
const V1 = '/api/downstream/v1'
const V0 = '/api/downstream'

// One request. json: an object to send as JSON; body: raw bytes or text.
async function http(method, p, { json, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) }
  if (json !== undefined) body = JSON.stringify(json)
  if (body !== undefined) {
    init.body = body
    init.headers['content-type'] ??= 'application/json'
  }
  let res, text
  try {
    res = await fetch(BASE + p, init)
    text = await res.text()
  } catch (err) {
    const why = node?.exited ? `the node exited (${node.proc.exitCode ?? node.proc.signalCode})` : (err.cause?.code ?? err.message)
    throw new Abort(`${method} ${p}: no answer: ${why}`)
  }
  let data
  try {
    data = JSON.parse(text)
  } catch {
    data = undefined
  }
  const note = headers['content-encoding'] ? ` [Content-Encoding: ${headers['content-encoding']}]` : ''
  const sent = body === undefined ? '' : ` ${show(typeof body === 'string' ? body : '<' + body.length + ' bytes>')}`
  const r = { status: res.status, data, text, what: `${method} ${p}${note}${sent}` }
  if (VERBOSE) console.log(`  ${got(r)}`)
  return r
}

const is2xx = (r) => r.status >= 200 && r.status < 300
const is4xx = (r) => r.status >= 400 && r.status < 500

// farmers.md: "Errors: {"status":"error","message":"..."}; 400 for bad
// input and unknown tokens".
function expectError(label, r, message, { status, ref } = {}) {
  const okStatus = status ? r.status === status : is4xx(r)
  const ok = okStatus && r.data?.status === 'error' && r.data?.message === message
  return expect(ok, label, () =>
    `expected ${status ?? '4xx'} {"status":"error","message":${JSON.stringify(message)}} (${ref ?? SPEC_F + ' Errors/Messages'}); got ${got(r)}`)
}

// ------------------------------------------------------- seeded bytes, tree

const sha256 = (...parts) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}
const b64 = (buf) => Buffer.from(buf).toString('base64')
// Standard padded base64, canonical (docs/proofs.md "Encodings"); spec: "base64".
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const isB64Of = (s, n) => typeof s === 'string' && B64_RE.test(s) && Buffer.from(s, 'base64').length === n
const HEX64 = /^[0-9a-f]{64}$/

// proofs.md "Seeded prototype chunks": AES-256-CTR over zero bytes, key =
// SHA-256 of the seed as text, 128-bit big-endian counter starting at 1.
function seededBytes(seed, size) {
  const key = sha256(Buffer.from(seed, 'utf8'))
  const iv = Buffer.alloc(16)
  iv[15] = 1
  const c = createCipheriv('aes-256-ctr', key, iv)
  return Buffer.concat([c.update(Buffer.alloc(size)), c.final()])
}

// proofs.md "Scheme merkle-segment": leaf = SHA-256(0x00 ‖ leaf), node =
// SHA-256(0x01 ‖ l ‖ r), a node without a right sibling promoted unchanged,
// the last leaf possibly short.
const LEAF = Buffer.from([0])
const INNER = Buffer.from([1])
function buildTree(data, leafSize) {
  const leaves = []
  for (let o = 0; o < data.length; o += leafSize) leaves.push(data.subarray(o, Math.min(o + leafSize, data.length)))
  if (leaves.length === 0) leaves.push(Buffer.alloc(0))
  const levels = [leaves.map((l) => sha256(LEAF, l))]
  while (levels.at(-1).length > 1) {
    const prev = levels.at(-1)
    const next = []
    for (let i = 0; i < prev.length; i += 2) next.push(i + 1 < prev.length ? sha256(INNER, prev[i], prev[i + 1]) : prev[i])
    levels.push(next)
  }
  return { leaves, levels, root: levels.at(-1)[0], n: leaves.length }
}

// Sibling hashes from the leaf up, only where a sibling exists.
function pathOf(tree, index) {
  const out = []
  let i = index
  for (let l = 0; l < tree.levels.length - 1; l++) {
    const sib = i ^ 1
    if (sib < tree.levels[l].length) out.push(tree.levels[l][sib])
    i >>= 1
  }
  return out
}

// Our own reading of the verifier, run on our proofs before sending them,
// so that a rejection points at the node, not at this script.
function verifyOwn(tree, indices, proof) {
  const seen = new Set()
  for (const leaf of proof.leaves) {
    if (seen.has(leaf.index)) return false
    seen.add(leaf.index)
    let h = sha256(LEAF, Buffer.from(leaf.data, 'base64'))
    let i = leaf.index
    let width = tree.n
    const p = leaf.path.map((x) => Buffer.from(x, 'base64'))
    let k = 0
    while (width > 1) {
      if (i & 1) h = sha256(INNER, p[k++] ?? Buffer.alloc(0), h)
      else if (i + 1 < width) h = sha256(INNER, h, p[k++] ?? Buffer.alloc(0))
      i >>= 1
      width = Math.ceil(width / 2)
    }
    if (k !== p.length || !h.equals(tree.root)) return false
  }
  return seen.size === indices.length && indices.every((i) => seen.has(i))
}

function makeProof(tree, indices) {
  return {
    leaves: indices.map((i) => ({ index: i, data: b64(tree.leaves[i]), path: pathOf(tree, i).map(b64) })),
  }
}

// ----------------------------------------------------------------- contracts

// What this farmer knows of one contract.
//   hash, size, seed, tree, challenge {seed, indices}, absDue (ms, local
//   clock), answered, state: 'live' | 'expired' | 'ended', accepted.
const contracts = new Map()
let params = null // the heartbeat of /new
let accepted = 0 // proofs the node acknowledged with "ok"
const now = () => performance.now()

// Checks one challenge object against proofs.md and the contract's tree.
function checkChallenge(c, ch, where) {
  const k = params.leaves_per_challenge
  const want = Math.min(k, c.tree.n)
  const ok =
    ch && typeof ch === 'object' && isB64Of(ch.seed, 32) && Array.isArray(ch.indices) &&
    ch.indices.length === want && new Set(ch.indices).size === ch.indices.length &&
    ch.indices.every((i) => Number.isInteger(i) && i >= 0 && i < c.tree.n)
  return expect(ok, `${where}: challenge of ${c.name} is {seed: base64 of 32 bytes, indices: ${want} distinct leaf indices < ${c.tree.n}}`,
    () => `expected per ${SPEC_P} Challenge {"seed":"<base64 of 32 random bytes>","indices":[k = leaves_per_challenge = ${k} indices]} ` +
      `(the chunk has ${c.tree.n} leaves, so at most ${want} distinct ones); got ${show(ch)}`)
}

// A /chunk item, per farmers.md "Contracts and timing" and proofs.md.
function acceptChunk(item, tRecv, name) {
  const label = `/chunk item ${name}`
  const fields = ['file_hash', 'size', 'seed', 'challenge', 'tag', 'due']
  must(item && fields.every((f) => f in item) && !('url' in item),
    `${label} has ${fields.join(', ')} (a prototype chunk: seed, no url)`,
    () => `expected {"file_hash","size","seed"|"url","challenge","tag","due"} (${SPEC_F} Contracts and timing); got ${show(item)}`)
  expect(HEX64.test(item.file_hash), `${label}: file_hash is 64 lowercase hex`, () => `got ${show(item.file_hash)}`)
  expect(typeof item.seed === 'string' && /^[0-9a-f]{32}$/i.test(item.seed), `${label}: seed is 32 hex characters`,
    () => `expected the 32 hex characters proofs.md names; got ${show(item.seed)}`)
  must(Number.isInteger(item.size) && item.size > 0, `${label}: size is a positive integer`, () => `got ${show(item.size)}`)
  const data = seededBytes(item.seed, item.size)
  expect(sha256(data).toString('hex') === item.file_hash, `${label}: file_hash = SHA-256 of the bytes regenerated from seed`,
    () => `expected ${sha256(data).toString('hex')} (hex SHA-256 of AES-256-CTR(SHA-256("${item.seed}"), counter 1) over ${item.size} zero bytes, ${SPEC_F}/${SPEC_P}); got ${item.file_hash}`)
  const tag = item.tag
  expect(tag && tag.size === item.size && tag.leaf_size === params.leaf_size && isB64Of(tag.root, 32),
    `${label}: tag is {root, leaf_size: ${params.leaf_size}, size: ${item.size}}`,
    () => `expected {"root":"<base64 32 bytes>","leaf_size":${params.leaf_size},"size":${item.size}} (${SPEC_P} Tag); got ${show(tag)}`)
  const tree = buildTree(data, tag?.leaf_size || params.leaf_size)
  expect(tag && tag.root === b64(tree.root), `${label}: tag root = our Merkle root over ${tree.n} leaves`,
    () => `expected ${b64(tree.root)} (${SPEC_P}: leaf = SHA-256(0x00‖leaf), node = SHA-256(0x01‖l‖r), lone node promoted); got ${show(tag?.root)}`)
  expect(typeof item.due === 'number' && item.due > 0 && item.due <= INTERVAL_S + 0.5,
    `${label}: due is seconds from now, in (0, ${INTERVAL_S}]`,
    () => `expected a float of seconds until the first challenge's due time (one interval, ${SPEC_F}); got ${show(item.due)}`)
  const c = {
    name, hash: item.file_hash, size: item.size, seed: item.seed, tree,
    challenge: item.challenge, absDue: tRecv + item.due * 1000, answered: false, state: 'live', accepted: 0, issued: 1,
  }
  checkChallenge(c, item.challenge, label)
  contracts.set(c.hash, c)
  return c
}

async function getChunks(p, maxSize, label) {
  const r = await http('GET', p)
  const t = now()
  must(r.status === 200 && Array.isArray(r.data?.chunks), `${label}: GET ${p} answers 200 {"chunks":[...]}`,
    () => `expected 200 {"chunks":[...]} (${SPEC_F} Routes); got ${got(r)}`)
  const chunks = r.data.chunks
  const total = chunks.reduce((s, c) => s + (c?.size ?? 0), 0)
  expect(chunks.length >= 1 && chunks.length <= 10 && total <= maxSize,
    `${label}: 1 to 10 contracts, ${total} bytes ≤ ${maxSize} asked`,
    () => `expected up to 10 contracts filling at most ${maxSize} bytes (${SPEC_F}: "never more than the size asked"); got ${chunks.length} contracts, ${total} bytes`)
  return { chunks, t }
}

// Records a successful answer; checks the contract moved to answered.
function answeredOk(c) {
  c.answered = true
  c.accepted++
  accepted++
}

// Reads one challenge item (batch routes) or body (single route) into c.
// Returns 'new' | 'same' | 'expired' | 'ended' | 'bad'.
// quiet: an unchanged challenge is not checked (just after a due time the
// contract's timer may not have fired yet).
function readChallenge(c, item, tRecv, where, quiet = false) {
  if (item?.error === 'contract expired') return 'expired'
  if (item?.status === 'no more challenges') return 'ended'
  if (!item || typeof item !== 'object' || !item.challenge || typeof item.due !== 'number' || typeof item.answered !== 'boolean') return 'bad'
  const absDue = tRecv + item.due * 1000
  if (item.challenge.seed === c.challenge.seed) {
    if (!quiet) expect(Math.abs(absDue - c.absDue) < GRID_SLACK_MS && item.answered === c.answered,
      `${where}: ${c.name} before its due time: same challenge, same due, answered ${c.answered}`,
      () => `expected the current challenge unchanged with answered ${c.answered} and due ≈ ${((c.absDue - tRecv) / 1000).toFixed(3)} s (${SPEC_F}: "the next challenge becomes available at the due time"); got ${show(item)}`)
    return 'same'
  }
  // A new challenge: on the fixed grid, one interval after the last due.
  const wantDue = c.absDue + INTERVAL_S * 1000
  expect(tRecv >= c.absDue - GRID_SLACK_MS && Math.abs(absDue - wantDue) < GRID_SLACK_MS && item.answered === false,
    `${where}: ${c.name} challenge ${c.issued}: issued at the last due time, due one interval later, not answered`,
    () => `expected after the due time a new challenge due ${(wantDue - tRecv) / 1000} s from now (grid start + (k+1)·I, ${SPEC_F} Contracts and timing); got at ${((tRecv - c.absDue) / 1000).toFixed(3)} s after the last due: ${show(item)}`)
  c.issued++
  c.challenge = item.challenge
  c.absDue = absDue
  c.answered = item.answered
  checkChallenge(c, item.challenge, where)
  return 'new'
}

// Waits for the latest due time of the given contracts, then polls fetch()
// (which returns {hash → item, t}) until every contract's state is in want.
// want: hash → Set of acceptable results ('new', 'expired', 'ended').
async function nextWindow(cs, want, fetchAll, where) {
  const latest = Math.max(...cs.map((c) => c.absDue))
  const wait = latest - now()
  if (wait > 0) await sleep(wait + 20)
  const done = new Map()
  const results = new Map()
  await until(INTERVAL_S * 1000 + 2_000, async () => {
    const { items, t } = await fetchAll(cs.filter((c) => !done.has(c.hash)))
    for (const c of cs) {
      if (done.has(c.hash)) continue
      const res = readChallenge(c, items.get(c.hash), t, where, true)
      results.set(c.hash, { res, item: items.get(c.hash) })
      if (want.get(c.hash).has(res)) done.set(c.hash, res)
    }
    return done.size === cs.length
  }, () => `${where}: ${cs.filter((c) => !done.has(c.hash)).map((c) => `${c.name} wants ${[...want.get(c.hash)].join('|')}, last got ${show(results.get(c.hash)?.item)}`).join('; ')}`)
  return done
}

// ------------------------------------------------------------------ the run

async function main() {
  // ---- the generator against proofs.md's vectors, before any node
  const vectors = [
    ['seed1', '09b0efd90570e157178a39c6213b5e361dad6ab4236e1d2f122be6b180c8360649c4218b333984451d14df146512faf00d1b'],
    ['123456', '18b2ce8a20c9e26ed9f6060b38f9b9f89b2338317af802831ea2f0327fadd72a68ad39f61455ca905c69cc7e2368aab41b5b'],
  ]
  for (const [seed, want] of vectors) {
    const hex = seededBytes(seed, 50).toString('hex')
    must(hex === want, `seeded bytes of "${seed}" match the vector of ${SPEC_P}`, () => `got ${hex}`)
  }
  // Random access: byte offset o lies in counter block o/16 + 1.
  {
    const all = seededBytes('seed1', 4096)
    const key = sha256(Buffer.from('seed1'))
    const iv = Buffer.alloc(16)
    iv.writeUInt32BE(Math.floor(1000 / 16) + 1, 12)
    const c = createCipheriv('aes-256-ctr', key, iv)
    const part = c.update(Buffer.alloc(64)).subarray(1000 % 16)
    must(part.equals(all.subarray(1000, 1000 + part.length)), `seeded bytes: offset 1000 lies in counter block 1000/16 + 1 (${SPEC_P})`, 'mismatch')
  }

  BASE = await launch()
  console.log(`node ${BASE}, challenge interval ${INTERVAL_S} s, ${CHALLENGES} challenges per contract`)

  // ---- GET / on the server root
  {
    const r = await http('GET', '/')
    expect(is2xx(r), 'GET / on the server root answers 2xx', () => `expected 2xx (${SPEC_F} Routes); got ${got(r)}`)
  }

  // ---- a token; the farmer id computed here
  const address = '0x' + randomBytes(20).toString('hex') // all lower case: no EIP-55 checksum
  let token, fid
  {
    const r = await http('GET', `${V1}/new/${address}`)
    must(r.status === 200 && r.data && typeof r.data.token === 'string', `GET ${V1}/new/{address} answers 200 with a token`,
      () => `expected 200 {"token","type","heartbeat"} (${SPEC_F} Tokens and addresses); got ${got(r)}`)
    const keys = Object.keys(r.data).sort().join(',')
    expect(keys === 'heartbeat,token,type', '/new body is exactly {token, type, heartbeat}', () => `got keys ${keys}`)
    token = r.data.token
    must(/^[0-9a-f]{32}$/.test(token), '/new token is 32 hex characters', () => `expected 16 random bytes as 32 hex characters; got ${show(token)}`)
    params = r.data.heartbeat
    const wantHb = { scheme: 'merkle-segment', leaf_size: 1024, leaves_per_challenge: 4 }
    must(params && Object.entries(wantHb).every(([k, v]) => params[k] === v),
      `/new heartbeat is ${JSON.stringify(wantHb)} (the node runs with the defaults)`,
      () => `expected ${JSON.stringify(wantHb)} (${SPEC_P} Scheme merkle-segment); got ${show(params)}`)
    expect(r.data.type === params.scheme, '/new type names the proof scheme', () =>
      `expected "type" to name the scheme, i.e. "merkle-segment" (${SPEC_F}: "type names the proof scheme"); got ${show(r.data.type)}`)
    fid = sha256(Buffer.from(token, 'hex')).toString('hex').slice(0, 20)

    const h = await http('GET', `${V0}/heartbeat/${token}`)
    expect(h.status === 200 && JSON.stringify(h.data) === JSON.stringify(r.data), `GET ${V0}/heartbeat/{token} answers the body of /new`,
      () => `expected ${show(r.data)} (${SPEC_F}: "same body as /new"); got ${got(h)}`)

    const bad = await http('GET', `${V1}/new/0x12345`)
    expect(bad.status === 400 && bad.data?.status === 'error' && typeof bad.data?.message === 'string' && bad.data.message.length > 0,
      'GET /new with an invalid address answers 400 with a message', () => `expected 400 {"status":"error","message":...} (${SPEC_F}: "an invalid address ... → 400 with a clear message"); got ${got(bad)}`)
  }

  // ---- the farmer id and its empty row
  {
    for (const prefix of [V1, V0]) {
      const r = await http('GET', `${prefix}/status/show/${fid}`)
      expect(r.status === 200 && r.data?.id === fid, `GET ${prefix}/status/show/{sha256(raw token)[:20]} answers that farmer`,
        () => `expected 200 with "id":"${fid}" (first 20 hex of SHA-256 of the raw 16 token bytes, ${SPEC_F}); got ${got(r)}`)
    }
    const r = await http('GET', `${V1}/status/show/${fid}`)
    const d = r.data ?? {}
    expect(String(d.address).toLowerCase() === address && d.heartbeats === 0 && d.contracts === 0 && d.size === 0 && d.online === false,
      'a new farmer shows its address, 0 heartbeats, 0 contracts, size 0, offline',
      () => `got ${got(r)}`)
    const wrongId = sha256(Buffer.from(token, 'utf8')).toString('hex').slice(0, 20) // the id of the hex text
    const w = await http('GET', `${V1}/status/show/${wrongId}`)
    expect(w.status === 404 && w.data?.status === 'error', '/status/show of an unknown farmer id (SHA-256 of the hex text) answers 404',
      () => `expected 404 {"status":"error",...} (${SPEC_F} Errors: "404 for an unknown farmer id"); got ${got(w)}`)
  }

  // ---- a second token, deleted: it is then unknown
  {
    const addr2 = '0x' + randomBytes(20).toString('hex')
    const r = await http('GET', `${V0}/new/${addr2}`)
    must(r.status === 200 && typeof r.data?.token === 'string', `GET ${V0}/new/{address} answers 200 with a token`, () => got(r))
    const t2 = r.data.token
    const d = await http('DELETE', `${V1}/token/${t2}`)
    expect(is2xx(d), 'DELETE /token/{token} answers 2xx', () => `expected 2xx (${SPEC_F} Routes: ends the token and its contracts); got ${got(d)}`)
    const c = await http('GET', `${V1}/chunk/${t2}`)
    expectError('/chunk with a deleted token is refused', c, 'Nonexistent token.', { status: 400 })
  }

  // ---- unknown tokens, everywhere
  {
    const unknown = randomBytes(16).toString('hex')
    const someHash = sha256(Buffer.from('x')).toString('hex')
    const reqs = [
      ['GET', `${V1}/chunk/${unknown}`],
      ['GET', `${V1}/chunk/${unknown}/4096`],
      ['GET', `${V1}/challenge/${unknown}`],
      ['GET', `${V0}/challenge/${unknown}/${someHash}`],
      ['POST', `${V1}/challenge/${unknown}`, { hashes: [someHash] }],
      ['POST', `${V1}/answer/${unknown}`, { proofs: [{ file_hash: someHash, proof: { leaves: [] } }] }],
      ['POST', `${V1}/answer/${unknown}/${someHash}`, { proof: { leaves: [] } }],
    ]
    for (const [m, p, json] of reqs) {
      const r = await http(m, p, { json })
      expectError(`${m} ${p.replace(unknown, '{unknown token}').replace(someHash, '{hash}')} answers Nonexistent token.`, r, 'Nonexistent token.', { status: 400 })
    }
  }

  // ---- contracts: one of the default size, then several by size
  const first = await getChunks(`${V1}/chunk/${token}`, DEFAULT_CHUNK, '/chunk default')
  const A = acceptChunk(first.chunks[0], first.t, 'A')
  const askSize = ASK_SIZE
  const more = await getChunks(`${V1}/chunk/${token}/${askSize}`, askSize, '/chunk sized')
  const rest = more.chunks.map((item, i) => acceptChunk(item, more.t, String.fromCharCode(66 + i)))
  must(rest.length >= 3, `/chunk/{token}/${askSize} hands out at least 3 contracts (pool of ${CHUNK_SIZES.join(', ')} bytes)`,
    () => `this run needs 3; got ${rest.length}: ${rest.map((c) => c.size).join(', ')}`)
  const [B, C] = rest
  const D = rest.at(-1) // left unanswered in window 1: it must expire
  const keep = [A, ...rest.filter((c) => c !== D)]
  expect(new Set(contracts.keys()).size === 1 + rest.length, 'every contract has its own file_hash', 'duplicate file_hash')
  const shortLeaf = [...contracts.values()].some((c) => c.size % params.leaf_size !== 0)
  console.log(`contracts: ${[...contracts.values()].map((c) => `${c.name} ${c.size} B / ${c.tree.n} leaves`).join(', ')}${shortLeaf ? ' (short last leaves covered)' : ''}`)

  // ======== window 0: negative cases on A, then valid answers
  const proofOf = (c) => {
    const p = makeProof(c.tree, c.challenge.indices)
    if (!verifyOwn(c.tree, c.challenge.indices, p)) throw new Abort(`our own proof for ${c.name} does not verify`)
    return p
  }
  {
    const good = proofOf(A)
    const single = `${V1}/answer/${token}/${A.hash}`
    const clone = () => JSON.parse(JSON.stringify(good))

    const flipped = clone()
    const bytes = Buffer.from(flipped.leaves[0].data, 'base64')
    bytes[bytes.length >> 1] ^= 0x01
    flipped.leaves[0].data = b64(bytes)
    expectError('single answer: one leaf data byte flipped → proof invalid', await http('POST', single, { json: { proof: flipped } }), 'proof invalid',
      { ref: `${SPEC_P} Verify: "each leaf hashes up its path to the stored root"` })

    const missing = clone()
    missing.leaves.pop()
    expectError('single answer: one challenged index missing → proof invalid', await http('POST', single, { json: { proof: missing } }), 'proof invalid',
      { ref: `${SPEC_P} Verify: "every challenged index is present exactly once"` })

    const dup = clone()
    dup.leaves.push(dup.leaves[0])
    expectError('single answer: one index twice → proof invalid', await http('POST', single, { json: { proof: dup } }), 'proof invalid',
      { ref: `${SPEC_P} Verify: "present exactly once ... nothing else is accepted"` })

    const dupSwap = clone()
    dupSwap.leaves[1] = dupSwap.leaves[0]
    expectError('single answer: one index twice in place of another → proof invalid', await http('POST', single, { json: { proof: dupSwap } }), 'proof invalid',
      { ref: `${SPEC_P} Verify: "every challenged index is present exactly once"` })

    const short = clone()
    const li = short.leaves.findIndex((l) => l.path.length > 0)
    short.leaves[li].path.pop()
    expectError('single answer: a path one hash too short → proof invalid', await http('POST', single, { json: { proof: short } }), 'proof invalid',
      { ref: `${SPEC_P} Proof: "path from the leaf up to the root"` })

    // A correct inclusion proof, but of a leaf nobody asked for.
    const other = [...Array(A.tree.n).keys()].find((i) => !A.challenge.indices.includes(i))
    if (other !== undefined) {
      const wrongIdx = clone()
      wrongIdx.leaves[0] = makeProof(A.tree, [other]).leaves[0]
      expectError('single answer: a leaf for an index not challenged → proof invalid', await http('POST', single, { json: { proof: wrongIdx } }), 'proof invalid',
        { ref: `${SPEC_P} Verify: "nothing else is accepted"` })
    }

    const r400 = await http('POST', single, { body: '{"proof": {"leaves": [' })
    expect(r400.status === 400 && r400.data?.status === 'error', 'single answer: malformed JSON body → 400',
      () => `expected 400 {"status":"error",...} (${SPEC_F}: "malformed JSON bodies get 400"); got ${got(r400)}`)

    const garbage = clone()
    garbage.leaves[0].data = '***not base64!!!'
    const g = await http('POST', single, { json: { proof: garbage } })
    const gm = g.data?.message
    expect(is4xx(g) && g.data?.status === 'error' && (gm === 'proof corrupted' || gm === 'proof invalid'),
      `single answer: garbage base64 leaf data → refused with ${JSON.stringify(gm)}`,
      () => `expected 4xx "proof corrupted" or "proof invalid" (${SPEC_F} Messages); got ${got(g)}`)

    const notHex = await http('POST', `${V1}/answer/${token}/${sha256(Buffer.from('nope')).toString('hex')}`, { json: { proof: good } })
    expectError('single answer: a file_hash the token does not hold → contract not found', notHex, 'contract not found')

    // Batch: per-item problems are items, in the order posted.
    const batch = await http('POST', `${V1}/answer/${token}`, {
      json: { proofs: [
        { file_hash: B.hash, proof: flipped },
        { file_hash: 'f'.repeat(64), proof: proofOf(B) },
        { file_hash: B.hash, proof: missing },
      ] },
    })
    const rep = batch.data?.report
    expect(batch.status === 200 && Array.isArray(rep) && rep.length === 3 &&
      rep[0]?.file_hash === B.hash && rep[0]?.error === 'proof invalid' &&
      rep[1]?.file_hash === 'f'.repeat(64) && rep[1]?.error === 'contract not found' &&
      rep[2]?.file_hash === B.hash && rep[2]?.error === 'proof invalid',
    'batch answer: wrong proofs and an unknown hash are report items in order (proof invalid, contract not found, proof invalid)',
    () => `expected 200 {"report":[{"file_hash":B,"error":"proof invalid"},{"file_hash":"fff…","error":"contract not found"},{…"proof invalid"}]} (${SPEC_F}: "Per-item problems in batch calls are items in the list"); got ${got(batch)}`)

    const b400 = await http('POST', `${V1}/answer/${token}`, { body: '{"proofs": [{"file_hash": ' })
    expect(b400.status === 400 && b400.data?.status === 'error', 'batch answer: malformed JSON body → 400',
      () => `expected 400 (${SPEC_F}: "malformed JSON bodies get 400, not an empty 200"); got ${got(b400)}`)

    // Nothing above changed A or B: the same challenge is still open.
    const ch = await http('GET', `${V1}/challenge/${token}/${A.hash}`)
    expect(ch.status === 200 && readChallenge(A, ch.data, now(), 'after rejected proofs') === 'same' && ch.data.answered === false,
      `GET ${V1}/challenge/{token}/{file_hash} after rejected proofs: {challenge, due, answered: false}, unchanged`,
      () => `expected 200 {"challenge","due","answered":false} (seed shape; a rejected proof changes nothing); got ${got(ch)}`)

    // Valid answers: A on the single route, the others in one batch.
    const ok = await http('POST', single, { json: { proof: good } })
    if (expect(ok.status === 200 && ok.data?.status === 'ok', 'single answer: our proof for A → 200 {"status":"ok"}',
      () => `expected 200 {"status":"ok"} (seed: answer response); got ${got(ok)}`)) answeredOk(A)
    const others = rest
    const all = await http('POST', `${V1}/answer/${token}`, { json: { proofs: others.map((c) => ({ file_hash: c.hash, proof: proofOf(c) })) } })
    const r = all.data?.report ?? []
    others.forEach((c, i) => {
      if (expect(all.status === 200 && r[i]?.file_hash === c.hash && r[i]?.status === 'ok', `batch answer: our proof for ${c.name} → {"file_hash","status":"ok"}`,
        () => `expected report item {"file_hash":"${c.hash}","status":"ok"}; got ${got(all)}`)) answeredOk(c)
    })

    // Twice in one window.
    expectError('single answer: A again in the same window → challenge already answered',
      await http('POST', single, { json: { proof: good } }), 'challenge already answered')
    const again = await http('POST', `${V1}/answer/${token}`, { json: { proofs: [{ file_hash: B.hash, proof: proofOf(B) }] } })
    expect(again.status === 200 && again.data?.report?.[0]?.error === 'challenge already answered' && again.data.report[0].file_hash === B.hash,
      'batch answer: B again in the same window → item "challenge already answered"',
      () => `expected 200 {"report":[{"file_hash":B,"error":"challenge already answered"}]}; got ${got(again)}`)

    // Answered, and still the same challenge until the due time.
    const list = await http('GET', `${V1}/challenge/${token}`)
    const t = now()
    const items = new Map((list.data?.challenges ?? []).map((x) => [x?.file_hash, x]))
    expect(list.status === 200 && items.size === contracts.size &&
      [...contracts.values()].every((c) => readChallenge(c, items.get(c.hash), t, 'window 0') === 'same' && items.get(c.hash).answered === true),
    `GET ${V1}/challenge/{token}: {"challenges":[...]} lists every contract, answered, until its due time`,
    () => `expected 200 {"challenges":[{"file_hash","challenge","due","answered":true} × ${contracts.size}]}; got ${got(list)}`)
  }

  // Fetchers: each returns {items: Map(hash → item), t}.
  const viaPost = (prefix) => async (cs) => {
    const r = await http('POST', `${prefix}/challenge/${token}`, { json: { hashes: cs.map((c) => c.hash) } })
    const t = now()
    const arr = r.status === 200 && Array.isArray(r.data?.challenges) ? r.data.challenges : []
    if (arr.length !== cs.length) fail(`POST /challenge answers one item per hash`, `expected ${cs.length} items; got ${got(r)}`)
    return { items: new Map(arr.map((x, i) => [cs[i]?.hash, x])), t, r }
  }
  const viaGetAll = (prefix) => async () => {
    const r = await http('GET', `${prefix}/challenge/${token}`)
    const t = now()
    const arr = r.status === 200 && Array.isArray(r.data?.challenges) ? r.data.challenges : []
    return { items: new Map(arr.map((x) => [x?.file_hash, x])), t, r }
  }
  const viaSingle = (prefix) => async (cs) => {
    const items = new Map()
    let t = now()
    for (const c of cs) {
      const r = await http('GET', `${prefix}/challenge/${token}/${c.hash}`)
      t = now()
      items.set(c.hash, r.status === 200 ? r.data : { httpError: got(r) })
    }
    return { items, t }
  }
  const want = (cs, ...states) => new Map(cs.map((c) => [c.hash, new Set(states)]))
  const answerBatch = async (cs, where, opts = {}) => {
    const json = { proofs: cs.map((c) => ({ file_hash: c.hash, proof: proofOf(c) })) }
    let body = JSON.stringify(json)
    const headers = {}
    if (opts.gzip === 'label') headers['content-encoding'] = 'gzip'
    if (opts.gzip === 'real') {
      headers['content-encoding'] = 'gzip'
      body = zlib.gzipSync(body)
    }
    const r = await http('POST', `${opts.prefix ?? V1}/answer/${token}`, { body, headers })
    const rep = r.data?.report ?? []
    cs.forEach((c, i) => {
      if (expect(r.status === 200 && rep[i]?.file_hash === c.hash && rep[i]?.status === 'ok', `${where}: batch answer${opts.gzip ? ` (${opts.gzip === 'label' ? 'plain JSON labelled' : 'real'} gzip)` : ''} for ${c.name} → ok`,
        () => `expected 200 {"report":[{"file_hash":"${c.hash}","status":"ok"},...]}${opts.gzip === 'label' ? ` (${SPEC_F}: a body labelled Content-Encoding: gzip that is not gzip is read as plain JSON)` : ''}; got ${got(r)}`)) answeredOk(c)
    })
  }
  const answerSingle = async (c, where, prefix = V1) => {
    const r = await http('POST', `${prefix}/answer/${token}/${c.hash}`, { json: { proof: proofOf(c) } })
    if (expect(r.status === 200 && r.data?.status === 'ok', `${where}: single answer for ${c.name} → ok`, () => `expected 200 {"status":"ok"}; got ${got(r)}`)) answeredOk(c)
  }

  // ======== window 1: POST /challenge; D left unanswered
  const live1 = [...contracts.values()]
  await nextWindow(live1, want(live1, 'new'), viaPost(V1), 'window 1 (POST /challenge)')
  pass('window 1: every contract got its next challenge at its due time (POST /challenge)')
  {
    const r = await http('POST', `${V1}/challenge/${token}`, { body: '{"hashes": [' })
    expect(r.status === 400 && r.data?.status === 'error', 'POST /challenge: malformed JSON body → 400',
      () => `expected 400 (${SPEC_F}: "malformed JSON bodies get 400, not an empty 200"); got ${got(r)}`)
    const u = await http('POST', `${V1}/challenge/${token}`, { json: { hashes: ['e'.repeat(64), A.hash] } })
    const x = u.data?.challenges
    expect(u.status === 200 && x?.length === 2 && x[0]?.file_hash === 'e'.repeat(64) && x[0]?.error === 'contract not found' && x[1]?.file_hash === A.hash && x[1]?.challenge,
      'POST /challenge: an unknown hash is the item {"file_hash","error":"contract not found"}, in order with the others',
      () => `expected 200 {"challenges":[{"file_hash":"eee…","error":"contract not found"},{"file_hash":A,...}]}; got ${got(u)}`)
  }
  await answerBatch(keep, 'window 1', { gzip: 'label' })
  const held = [...contracts.values()].reduce((s, c) => s + c.size, 0)
  if (held === MAX_BYTES) {
    const full = await http('GET', `${V1}/chunk/${token}/${D.size}`)
    expect(full.status === 200 && Array.isArray(full.data?.chunks) && full.data.chunks.length === 0,
      `window 1: the address holds its limit (--max-bytes-per-address ${MAX_BYTES}): /chunk answers {"chunks":[]}`,
      () => `expected 200 {"chunks":[]} (${SPEC_F}: "never more than [the limit] of live contracts per address"); got ${got(full)}`)
  } else {
    console.log(`note: the address holds ${held} of ${MAX_BYTES} bytes; the limit checks are skipped`)
  }

  // ======== window 2: GET /challenge lists live contracts only; D expired
  await nextWindow([...keep, D], new Map([...want(keep, 'new'), [D.hash, new Set(['expired', 'bad'])]]), async (cs) => {
    const got2 = await viaGetAll(V0)(cs)
    if (!got2.items.has(D.hash)) got2.items.set(D.hash, { error: 'contract expired' }) // absent from the live list
    return got2
  }, 'window 2 (GET /challenge/{token})')
  {
    const list = await http('GET', `${V1}/challenge/${token}`)
    const hs = (list.data?.challenges ?? []).map((x) => x?.file_hash)
    expect(list.status === 200 && !hs.includes(D.hash) && keep.every((c) => hs.includes(c.hash)),
      `window 2: D, unanswered by its due time, is gone from GET /challenge/{token} (live contracts only)`,
      () => `expected the live contracts ${keep.map((c) => c.name).join(',')} without D (${SPEC_F} Routes: "all of the token's live contracts"); got ${got(list)}`)
    D.state = 'expired'
    const p = await http('POST', `${V1}/challenge/${token}`, { json: { hashes: [D.hash] } })
    expect(p.status === 200 && p.data?.challenges?.[0]?.file_hash === D.hash && p.data.challenges[0].error === 'contract expired',
      'window 2: POST /challenge for D → item "contract expired"',
      () => `expected 200 {"challenges":[{"file_hash":D,"error":"contract expired"}]} (${SPEC_F}: "No valid answer by the due time → the contract is expired for good"); got ${got(p)}`)
    expectError('window 2: single answer for expired D → contract expired',
      await http('POST', `${V1}/answer/${token}/${D.hash}`, { json: { proof: proofOf(D) } }), 'contract expired')
    const bd = await http('POST', `${V1}/answer/${token}`, { json: { proofs: [{ file_hash: D.hash, proof: proofOf(D) }] } })
    expect(bd.status === 200 && bd.data?.report?.[0]?.error === 'contract expired', 'window 2: batch answer for expired D → item "contract expired"',
      () => `expected 200 {"report":[{"file_hash":D,"error":"contract expired"}]}; got ${got(bd)}`)
    const sd = await http('GET', `${V0}/challenge/${token}/${D.hash}`)
    expect(is4xx(sd) && sd.data?.message === 'contract expired', 'window 2: GET /challenge/{token}/{D} → contract expired',
      () => `expected a 4xx {"status":"error","message":"contract expired"} (${SPEC_F} Messages); got ${got(sd)}`)
  }
  // A new contract E, which outlives the others: at the limit, it fits in
  // the room D left when it expired.
  const small = D.size
  const fresh = await getChunks(`${V0}/chunk/${token}/${small}`, small,
    `/chunk after an expiry (${SPEC_F}: "Ended and expired contracts stop counting against limits at once")`)
  const E = acceptChunk(fresh.chunks[0], fresh.t, 'E')
  await answerSingle(A, 'window 2', V0)
  await answerBatch([...keep.filter((c) => c !== A), E], 'window 2', { gzip: 'real', prefix: V0 })

  // ======== window 3: single GET /challenge per contract; the last challenge of A..
  await nextWindow([...keep, E], want([...keep, E], 'new'), viaSingle(V1), 'window 3 (GET /challenge/{token}/{file_hash})')
  pass('window 3: every live contract got its next challenge at its due time (GET /challenge/{token}/{file_hash})')
  await answerBatch([...keep, E], 'window 3')
  for (const c of keep) {
    expect(c.issued === CHALLENGES, `${c.name} has had ${CHALLENGES} challenges (--challenges-per-contract ${CHALLENGES})`, () => `counted ${c.issued}`)
  }

  // ======== window 4: A.. have had their challenges; E goes on
  await nextWindow([...keep, E], new Map([...want(keep, 'ended'), [E.hash, new Set(['new'])]]), viaPost(V1), 'window 4 (POST /challenge)')
  pass(`window 4: after ${CHALLENGES} answered challenges every contract but E reports status "no more challenges"; E got its next challenge`)
  for (const c of keep) c.state = 'ended'
  {
    const s = await http('GET', `${V1}/challenge/${token}/${A.hash}`)
    expect(s.status === 200 && s.data?.status === 'no more challenges', 'GET /challenge/{token}/{file_hash} of an ended contract → 200 {"status":"no more challenges"}',
      () => `expected {"status":"no more challenges"} (${SPEC_F}: 'the challenge call answers "no more challenges"'; seed: single-route response); got ${got(s)}`)
    const list = await http('GET', `${V1}/challenge/${token}`)
    const hs = (list.data?.challenges ?? []).map((x) => x?.file_hash)
    expect(list.status === 200 && hs.length === 1 && hs[0] === E.hash, 'GET /challenge/{token} now lists E alone',
      () => `expected only E (${SPEC_F}: "all of the token's live contracts"; ended contracts are archived); got ${got(list)}`)
    const late = await http('POST', `${V1}/answer/${token}/${A.hash}`, { json: { proof: proofOf(A) } })
    expect(is4xx(late), 'answering an ended contract is refused with a 4xx', () => `got ${got(late)}`)
  }
  await answerSingle(E, 'window 4')

  // ---- statistics
  const wantRow = { heartbeats: accepted, contracts: 1, size: E.size, online: true }
  const rowOk = (d) => d && d.id === fid && Object.entries(wantRow).every(([k, v]) => d[k] === v)
  for (const prefix of [V1, V0]) {
    const r = await http('GET', `${prefix}/status/show/${fid}`)
    expect(r.status === 200 && rowOk(r.data), `GET ${prefix}/status/show/{id}: ${JSON.stringify(wantRow)}`,
      () => `expected heartbeats = the ${accepted} proofs acknowledged "ok", contracts/size = the one live contract E (${E.size} B), online true (${SPEC_F} Statistics); got ${got(r)}`)
  }
  const r = await http('GET', `${V1}/status/show/${fid}`)
  const d = r.data ?? {}
  const fields = ['id', 'address', 'location', 'uptime', 'heartbeats', 'contracts', 'size', 'online', 'ip_hash', 'last_due']
  expect(fields.every((f) => f in d), `/status/show has ${fields.join(', ')}`, () => `expected every field of ${SPEC_F} Statistics; got ${got(r)}`)
  expect(d.location === null, '/status/show: location is null without a GeoIP database', () => `got ${show(d.location)}`)
  expect(typeof d.uptime === 'number' && d.uptime >= 99.9 && d.uptime <= 100 && Math.abs(Math.round(d.uptime * 100) - d.uptime * 100) < 1e-6,
    `/status/show: uptime ${d.uptime} ≈ 100 (never without a live contract since the first), two decimals`,
    () => `expected a percentage with two decimals, 100 here (${SPEC_F}: "time with at least one live contract ÷ time since the first contract"); got ${show(d.uptime)}`)
  expect(typeof d.ip_hash === 'string' && d.ip_hash.length > 0 && !d.ip_hash.includes('127.0.0.1'), '/status/show: ip_hash is a non-empty string, not the IP', () => `got ${show(d.ip_hash)}`)
  {
    const ld = Date.parse(d.last_due)
    const eDue = Date.now() + (E.absDue - now())
    expect(typeof d.last_due === 'string' && Number.isFinite(ld) && Math.abs(ld - eDue) < 2_000,
      `/status/show: last_due is a date near E's current due time (docs/farmer-api.md: latest due of the farmer's contracts)`,
      () => `expected a date ≈ ${new Date(eDue).toUTCString()} (the latest due of the farmer's contracts); got ${show(d.last_due)}`)
  }
  // The list is rebuilt on a period: poll it until the row agrees.
  {
    let last
    try {
      await until(STATUS_LIST_TIMEOUT_MS, async () => {
        last = await http('GET', `${V0}/status/list`)
        return rowOk(last.data?.farmers?.find((f) => f?.id === fid))
      }, () => 'the row')
      pass(`GET ${V0}/status/list: our row ${JSON.stringify(wantRow)}`)
    } catch {
      fail(`GET ${V0}/status/list: our row`, `expected ${JSON.stringify(wantRow)} within ${STATUS_LIST_TIMEOUT_MS} ms; got ${got(last)}`)
    }
    const row = last?.data?.farmers?.find((f) => f?.id === fid) ?? {}
    const same = ['id', 'address', 'location', 'heartbeats', 'contracts', 'size', 'online', 'ip_hash']
    expect(same.every((k) => JSON.stringify(row[k]) === JSON.stringify(d[k])), '/status/list and /status/show agree on the row',
      () => `list ${show(row)} vs show ${show(d)} (${SPEC_F}: "/status/show uses the same definitions as the list")`)
    for (const p of [`${V1}/status/list/online`, `${V1}/status/list/by/d/heartbeats/5/0`, `${V1}/status/list/online/by/d/size`]) {
      const l = await http('GET', p)
      expect(l.status === 200 && (l.data?.farmers ?? []).some((f) => f?.id === fid), `GET ${p} lists our farmer`, () => got(l))
    }
    expectError('GET /status/list/by/nonsense → Invalid sort.', await http('GET', `${V1}/status/list/by/nonsense`), 'Invalid sort.', { status: 400 })
  }
  console.log(`proofs acknowledged "ok": ${accepted}`)
}

// ----------------------------------------------------------- exit handling

let finishing = false
async function finish(code) {
  if (finishing) return
  finishing = true
  if (failed > 0 && node) console.log(`--- last lines of the node's log:${tail(node.log)}`)
  await cleanup()
  console.log(`farmer.mjs: ${passed} passed, ${failed} failed`)
  if (findings.length > 0) {
    console.log('failures:')
    for (const f of findings) console.log(`  - ${f}`)
  }
  process.exit(code ?? (failed > 0 ? 1 : 0))
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    console.log(`interrupted by ${sig}`)
    finish(130)
  })
}
process.on('unhandledRejection', (err) => {
  fail('harness', `unhandled rejection: ${err?.stack ?? err}`)
  finish(1)
})
process.on('uncaughtException', (err) => {
  fail('harness', `uncaught exception: ${err?.stack ?? err}`)
  finish(1)
})
process.on('exit', () => {
  if (node && !node.exited) node.proc.kill('SIGKILL')
})

const overall = setTimeout(() => {
  fail('harness', `overall deadline of ${TOTAL_DEADLINE_MS / 1000} s passed`)
  finish(1)
}, TOTAL_DEADLINE_MS)
overall.unref()

const t0 = Date.now()
try {
  await main()
} catch (err) {
  if (err instanceof Abort) {
    if (!err.recorded) fail('run stopped', err.message)
    else console.log(`run stopped: ${err.message}`)
  }
  else fail('harness', `error: ${err?.stack ?? err}`)
}
console.log(`took ${((Date.now() - t0) / 1000).toFixed(1)} s`)
await finish()
