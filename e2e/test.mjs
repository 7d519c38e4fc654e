// End-to-end test of a Sluice node against the real @oceanprotocol/uploader
// 0.0.3 client, paying with an ERC-20 on a local ganache chain.
//
// Started by run.sh, which installs the npm packages and builds the binary.
// Everything listens on 127.0.0.1 only. Every child process (ganache, the
// node, two farmers) is killed and the temp dir removed on every exit path.
//
// Environment:
//   SLUICE_BIN       the sluice binary (default e2e/.bin/sluice)
//   E2E_TOKEN_BIN    creation bytecode of the ERC-20, hex
//                    (default contracts/SluiceToken.bin)
//   E2E_TOKEN_ABI    its ABI (default contracts/SluiceToken.abi.json)
//   E2E_KEEP_TMP=1   keep the temp dir (logs, data) for inspection
//   E2E_VERBOSE=1    echo the children's logs as they come

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

import { ethers } from 'ethers'
import { UploaderClient } from '@oceanprotocol/uploader'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const SLUICE_BIN = process.env.SLUICE_BIN || path.join(HERE, '.bin', 'sluice')
const TOKEN_BIN = process.env.E2E_TOKEN_BIN || path.join(ROOT, 'contracts', 'SluiceToken.bin')
const TOKEN_ABI = process.env.E2E_TOKEN_ABI || path.join(ROOT, 'contracts', 'SluiceToken.abi.json')
const KEEP_TMP = process.env.E2E_KEEP_TMP === '1'
const VERBOSE = process.env.E2E_VERBOSE === '1'

const CHAIN_ID = 1337
const TYPE = 'sluice'
const SYMBOL = 'SLT'
const DURATION = 30 * 24 * 3600 // seconds of storage asked for
const FILE_SIZES = [40 * 1024, 90 * 1024]
const MINTED = 10n ** 24n

const TOTAL_DEADLINE_MS = 240_000 // the whole run, setup included
const START_TIMEOUT_MS = 30_000 // one child process getting ready
const STATUS_TIMEOUT_MS = 90_000 // upload until status 400
const STATUS_POLL_MS = 500
const HTTP_TIMEOUT_MS = 15_000
const KILL_GRACE_MS = 5_000
const BLOCK_TICK_MS = 1_000 // an empty block this often (see startBlockTicker)

// Status codes that end an upload without success.
const FAILED_STATUSES = new Set([200, 201, 202, 203, 401, 402, 403, 404])

// All traffic is local: never route it through a proxy from the environment
// (axios honours HTTP_PROXY / NO_PROXY).
for (const k of ['NO_PROXY', 'no_proxy']) {
  process.env[k] = ['127.0.0.1', 'localhost', process.env[k]].filter(Boolean).join(',')
}

// ---------------------------------------------------------------- reporting

const STEPS = [
  ['setup', 'ganache started, token deployed, user funded'],
  ['node', 'sluice node and two farmers started'],
  ['info', '1. getStorageInfo lists type sluice with its payment option'],
  ['quoteSizes', '2a. getQuote by file sizes'],
  ['quotePaths', '2b. getQuote by file paths'],
  ['upload', '3. upload (client approves, then posts file1..file2)'],
  ['status', '4. getStatus reaches 400'],
  ['link', '5. getLink returns the files, GET /ipfs/{cid} serves them back'],
  ['history', '6. getHistory(1, 10, sluice) lists the quote'],
  ['balances', '7. token moved from user to payee, exactly tokenAmount'],
]
const results = new Map() // key → {ok, detail}

function record(key, ok, detail) {
  if (results.has(key)) return
  const title = STEPS.find(([k]) => k === key)[1]
  results.set(key, { ok, detail })
  console.log(`${ok ? 'PASS' : 'FAIL'}: ${title}${detail ? ` — ${detail}` : ''}`)
}

function summary() {
  const passed = [...results.values()].filter((r) => r.ok).length
  const failed = results.size - passed
  console.log(`${passed} passed, ${failed} failed`)
  return failed
}

class StepError extends Error {}
function check(cond, msg) {
  if (!cond) throw new StepError(msg)
}

// Runs one step; a step whose prerequisites failed is reported as failed too.
async function step(key, deps, fn) {
  const bad = deps.filter((d) => !results.get(d)?.ok)
  if (bad.length > 0) {
    record(key, false, `skipped: ${bad.join(', ')} failed`)
    return undefined
  }
  try {
    const { value, detail } = (await fn()) ?? {}
    record(key, true, detail)
    return value
  } catch (err) {
    record(key, false, describe(err))
    return undefined
  }
}

function describe(err) {
  if (err instanceof StepError) return err.message
  if (err?.isAxiosError) {
    const r = err.response
    return r
      ? `HTTP ${r.status} from ${r.config?.method?.toUpperCase()} ${r.config?.url}: ${JSON.stringify(r.data)}`
      : `${err.code ?? ''} ${err.message} (${err.config?.method?.toUpperCase()} ${err.config?.url})`
  }
  return err?.shortMessage || err?.message || String(err)
}

const show = (v) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x))

// ------------------------------------------------------------ child processes

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-'))
const children = [] // {name, proc, log}
let cleaning = null

function childEnv() {
  // Flags are passed explicitly; SLUICE_* variables from the caller's shell
  // must not change the node under test.
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLUICE_')) env[k] = v
  return env
}

function start(name, cmd, args) {
  const log = path.join(tmp, `${name}.log`)
  const out = fs.createWriteStream(log)
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  const child = { name, proc, log, exited: false, lines: [] }
  children.push(child)
  proc.on('exit', () => {
    child.exited = true
  })
  proc.on('error', (err) => {
    child.exited = true
    child.error = err
  })
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.pipe(out, { end: false })
    readline.createInterface({ input: stream }).on('line', (line) => {
      if (VERBOSE) console.log(`[${name}] ${line}`)
      for (const w of child.lines) w(line)
    })
  }
  return child
}

// Resolves with the first value match(line) returns; rejects when the child
// exits or the time is up.
function waitForLine(child, what, match, ms = START_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const done = (fn, v) => {
      clearTimeout(timer)
      child.lines = child.lines.filter((w) => w !== onLine)
      child.proc.off('exit', onExit)
      fn(v)
    }
    const onLine = (line) => {
      const v = match(line)
      if (v !== undefined && v !== null && v !== false) done(resolve, v)
    }
    const onExit = (code, sig) =>
      done(reject, new Error(`${child.name} exited (${code ?? sig}) before ${what}; log: ${tail(child.log)}`))
    const timer = setTimeout(
      () => done(reject, new Error(`${child.name}: no ${what} within ${ms} ms; log: ${tail(child.log)}`)),
      ms,
    )
    child.lines.push(onLine)
    child.proc.on('exit', onExit)
    if (child.exited) onExit(child.proc.exitCode, child.proc.signalCode)
    if (child.error) done(reject, child.error)
  })
}

function tail(file, n = 15) {
  try {
    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n')
    return '\n    ' + lines.slice(-n).map((l) => l.slice(0, 400)).join('\n    ')
  } catch {
    return '(no log)'
  }
}

function jsonLine(line) {
  try {
    return JSON.parse(line)
  } catch {
    return null
  }
}

async function stopChild(child) {
  if (child.exited || child.proc.exitCode !== null || child.proc.signalCode !== null) return
  const gone = new Promise((r) => child.proc.once('exit', r))
  child.proc.kill('SIGTERM')
  const timer = setTimeout(() => {
    if (!child.exited) child.proc.kill('SIGKILL')
  }, KILL_GRACE_MS)
  await Promise.race([gone, new Promise((r) => setTimeout(r, KILL_GRACE_MS + 2_000))])
  clearTimeout(timer)
}

// Stops farmers, then the node, then ganache; removes the temp dir.
function cleanup() {
  cleaning ??= (async () => {
    if (blockTicker) clearInterval(blockTicker)
    for (const c of [...children].reverse()) await stopChild(c)
    if (KEEP_TMP) console.log(`kept ${tmp}`)
    else fs.rmSync(tmp, { recursive: true, force: true })
  })()
  return cleaning
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

// -------------------------------------------------------------------- chain

async function startGanache(accounts) {
  const cli = path.join(HERE, 'node_modules', 'ganache', 'dist', 'node', 'cli.js')
  const balance = '0x' + (1000n * 10n ** 18n).toString(16)
  for (let attempt = 1; ; attempt++) {
    const port = await freePort() // ganache refuses port 0
    const child = start(`ganache-${attempt}`, process.execPath, [
      cli,
      '--server.host', '127.0.0.1',
      '--server.port', String(port),
      '--chain.chainId', String(CHAIN_ID),
      '--miner.instamine', 'eager',
      '--logging.quiet', 'false',
      ...accounts.flatMap((w) => ['--wallet.accounts', `${w.privateKey},${balance}`]),
    ])
    try {
      const got = await waitForLine(child, 'RPC listening line', (l) => l.match(/RPC Listening on (127\.0\.0\.1:\d+)/)?.[1])
      return `http://${got}`
    } catch (err) {
      await stopChild(child)
      if (attempt >= 3) throw err
    }
  }
}

// Ganache in instamine mode mines a block only when a transaction comes,
// so a chain with no other traffic never grows on top of the node's payment
// and --chain-confirmations (blocks on top of the payment's block) would
// never be reached. A real chain makes blocks steadily: emulate that with an
// empty block every BLOCK_TICK_MS. Instamine stays on, so the client's
// approve() is still mined at once.
let blockTicker = null
function startBlockTicker(provider) {
  let busy = false
  blockTicker = setInterval(async () => {
    if (busy) return
    busy = true
    try {
      await provider.send('evm_mine', [])
    } catch {
      // ganache stopping; cleanup clears the ticker
    } finally {
      busy = false
    }
  }, BLOCK_TICK_MS)
  blockTicker.unref()
}

// CIDv1, raw codec (0x55), sha2-256 multihash, base32 lower ("b" prefix).
function cidV1Raw(bytes) {
  const mh = Buffer.concat([Buffer.from([0x01, 0x55, 0x12, 0x20]), createHash('sha256').update(bytes).digest()])
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let out = 'b'
  let bits = 0
  let value = 0
  for (const b of mh) {
    value = (value << 8) | b
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  return out
}

async function httpGet(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
  const body = Buffer.from(await res.arrayBuffer())
  return { status: res.status, body }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// --------------------------------------------------------------------- main

async function main() {
  const deployer = ethers.Wallet.createRandom()
  const payee = ethers.Wallet.createRandom()
  const user = ethers.Wallet.createRandom()
  const payeeAddr = payee.address

  const files = FILE_SIZES.map((n, i) => {
    const p = path.join(tmp, `file${i + 1}.bin`)
    const bytes = randomBytes(n)
    fs.writeFileSync(p, bytes)
    return { path: p, bytes, cid: cidV1Raw(bytes) }
  })

  // ---- setup: chain, token, balances
  const chain = await step('setup', [], async () => {
    check(fs.existsSync(TOKEN_BIN), `no token bytecode at ${TOKEN_BIN}`)
    const rpc = await startGanache([deployer, payee, user])
    const provider = new ethers.JsonRpcProvider(rpc, CHAIN_ID, { staticNetwork: true, cacheTimeout: -1 })
    provider.pollingInterval = 100
    const net = await provider.getNetwork()
    check(net.chainId === BigInt(CHAIN_ID), `ganache chain id ${net.chainId}, want ${CHAIN_ID}`)
    const abi = JSON.parse(fs.readFileSync(TOKEN_ABI, 'utf8'))
    const code = '0x' + fs.readFileSync(TOKEN_BIN, 'utf8').trim().replace(/^0x/, '')
    const deployerW = deployer.connect(provider)
    let token
    try {
      token = await new ethers.ContractFactory(abi, code, deployerW).deploy('Sluice Test Token', SYMBOL)
      await token.waitForDeployment()
    } catch (err) {
      const why = err?.info?.error?.message || describe(err)
      throw new StepError(
        `deploying ${path.relative(ROOT, TOKEN_BIN)} failed: ${why}` +
          (/invalid opcode/.test(why)
            ? ' (ganache 7 runs at most the shanghai hardfork: the bytecode must be compiled for evmVersion shanghai or older, e.g. no MCOPY)'
            : ''),
      )
    }
    await (await token.mint(user.address, MINTED)).wait()
    startBlockTicker(provider)
    const tokenAddr = await token.getAddress()
    const bal = await token.balanceOf(user.address)
    check(bal === MINTED, `user balance ${bal} after mint, want ${MINTED}`)
    return {
      value: { rpc, provider, token, tokenAddr },
      detail: `${rpc}, token ${tokenAddr}, user ${user.address}, payee ${payeeAddr}`,
    }
  })

  // ---- node and farmers
  const node = await step('node', ['setup'], async () => {
    check(fs.existsSync(SLUICE_BIN), `no sluice binary at ${SLUICE_BIN}`)
    const keyFile = path.join(tmp, 'payee.key')
    fs.writeFileSync(keyFile, payee.privateKey + '\n', { mode: 0o600 })
    const nodeDir = path.join(tmp, 'node')
    fs.mkdirSync(nodeDir)
    const proc = start('sluice', SLUICE_BIN, [
      'serve',
      '--listen', '127.0.0.1:0',
      '--private-listen', '127.0.0.1:0',
      '--data-dir', nodeDir,
      '--challenge-interval', '2s',
      // Farmers fill their --size with prototype chunks at once; the node
      // ends some of those early to make room for the uploaded pieces.
      '--upload-rate', '1/1000000',
      '--upload-redundancy', '2',
      '--upload-chunk-size', '64KiB',
      '--chain-rpc', chain.rpc,
      '--chain-confirmations', '1',
      '--chain-tokens', `${SYMBOL}:${chain.tokenAddr}`,
      '--payee-key-file', keyFile,
    ])
    let addr
    await waitForLine(proc, '"msg":"node.ready"', (l) => {
      const j = jsonLine(l)
      if (j?.msg === 'node.listening') addr = j.addr
      return j?.msg === 'node.ready'
    })
    check(addr, 'node.ready came without a node.listening line carrying "addr"')
    const base = `http://${addr}`
    for (const i of [1, 2]) {
      const dir = path.join(tmp, `farmer${i}`)
      fs.mkdirSync(dir)
      const f = start(`farmer${i}`, SLUICE_BIN, [
        'farmer',
        '--node', base,
        '--address', ethers.Wallet.createRandom().address,
        '--size', '1MiB',
        '--dir', dir,
        '--batch-window', '100ms',
      ])
      // A farmer has no ready line; it must at least stay up.
      await sleepUnlessExit(f, 300)
    }
    return { value: { base }, detail: base }
  })

  if (!node) return
  const signer = user.connect(chain.provider)
  const client = new UploaderClient(node.base, payeeAddr, signer)
  const chainIdStr = String(CHAIN_ID)

  // ---- 1. storage info
  await step('info', ['node'], async () => {
    const info = await client.getStorageInfo()
    check(Array.isArray(info), `GET / gave ${show(info)}, want an array`)
    const s = info.find((x) => x?.type === TYPE)
    check(s, `no type ${TYPE} in ${show(info)}`)
    check(typeof s.description === 'string', `description ${show(s.description)}`)
    check(Array.isArray(s.payment), `payment ${show(s.payment)}, want an array`)
    const opt = s.payment.find((p) => p.chainId === chainIdStr)
    check(opt, `no payment option with chainId "${chainIdStr}" (a string) in ${show(s.payment)}`)
    const tok = (opt.acceptedTokens ?? []).find((t) => t.title === SYMBOL)
    check(tok, `no acceptedTokens entry {title: "${SYMBOL}"} in ${show(opt)}`)
    check(
      typeof tok.value === 'string' && tok.value.toLowerCase() === chain.tokenAddr.toLowerCase(),
      `token value ${show(tok.value)}, want ${chain.tokenAddr}`,
    )
    return { detail: show(s) }
  })

  const quoteArgs = {
    type: TYPE,
    duration: DURATION,
    payment: { chainId: chainIdStr, tokenAddress: chain.tokenAddr },
    userAddress: user.address,
  }
  function checkQuote(q) {
    check(q && typeof q === 'object', `quote ${show(q)}`)
    check(typeof q.quoteId === 'string' && q.quoteId.length > 0, `quoteId ${show(q.quoteId)}, want a non-empty string`)
    check(
      (typeof q.tokenAmount === 'string' && /^[0-9]+$/.test(q.tokenAmount)) ||
        (typeof q.tokenAmount === 'number' && Number.isSafeInteger(q.tokenAmount)),
      `tokenAmount ${show(q.tokenAmount)}, want a decimal string or integer`,
    )
    check(BigInt(q.tokenAmount) > 0n, `tokenAmount ${q.tokenAmount}, want > 0 on a paid type`)
    check(
      typeof q.approveAddress === 'string' && q.approveAddress.toLowerCase() === payeeAddr.toLowerCase(),
      `approveAddress ${show(q.approveAddress)}, want the payee ${payeeAddr}`,
    )
    check(q.chainId === chainIdStr, `chainId ${show(q.chainId)}, want "${chainIdStr}" echoed as sent (a string)`)
    check(
      typeof q.tokenAddress === 'string' && q.tokenAddress.toLowerCase() === chain.tokenAddr.toLowerCase(),
      `tokenAddress ${show(q.tokenAddress)}, want ${chain.tokenAddr}`,
    )
  }

  // ---- 2. quotes
  const qSizes = await step('quoteSizes', ['info'], async () => {
    const q = await client.getQuote({ ...quoteArgs, fileInfo: FILE_SIZES.map((length) => ({ length })) })
    checkQuote(q)
    return { value: q, detail: show(q) }
  })
  const quote = await step('quotePaths', ['info'], async () => {
    const q = await client.getQuote({ ...quoteArgs, filePath: files.map((f) => f.path) })
    checkQuote(q)
    if (qSizes) {
      check(q.quoteId !== qSizes.quoteId, `both quotes have id ${q.quoteId}`)
      check(
        BigInt(q.tokenAmount) === BigInt(qSizes.tokenAmount),
        `tokenAmount ${q.tokenAmount} by paths != ${qSizes.tokenAmount} by sizes for the same lengths`,
      )
    }
    return { value: q, detail: show(q) }
  })

  // ---- 3. upload
  const before = quote && {
    user: await chain.token.balanceOf(user.address),
    payee: await chain.token.balanceOf(payeeAddr),
  }
  await step('upload', ['quotePaths'], async () => {
    const res = await client.upload(
      quote.quoteId,
      quote.tokenAddress,
      String(quote.tokenAmount),
      files.map((f) => f.path),
      TYPE,
    )
    // upload() swallows errors (logs them, returns error.data = undefined).
    check(res, 'client.upload returned nothing: it failed (see the "Error:" it logged above)')
    check(res.status === 200, `HTTP ${res.status} ${show(res.data)}, want 200`)
    check(res.data === 'File upload succeeded.', `body ${show(res.data)}, want "File upload succeeded."`)
    return { detail: `HTTP ${res.status} ${show(res.data)}` }
  })

  // ---- 4. status
  await step('status', ['upload'], async () => {
    const deadline = Date.now() + STATUS_TIMEOUT_MS
    const seen = []
    for (;;) {
      const r = await client.getStatus(quote.quoteId)
      check(r && Number.isInteger(r.status), `getStatus gave ${show(r)}, want {status: int}`)
      if (seen.at(-1) !== r.status) seen.push(r.status)
      if (r.status === 400) break
      check(!FAILED_STATUSES.has(r.status), `status ${r.status} (path ${seen.join(' → ')})`)
      check(Date.now() < deadline, `no status 400 within ${STATUS_TIMEOUT_MS / 1000} s (path ${seen.join(' → ')})`)
      await sleep(STATUS_POLL_MS)
    }
    return { detail: `status path ${seen.join(' → ')}` }
  })

  // ---- 5. links and content
  await step('link', ['status'], async () => {
    const links = await client.getLink(quote.quoteId)
    check(Array.isArray(links), `getLink gave ${show(links)}, want an array`)
    check(links.length === files.length, `${links.length} links for ${files.length} files: ${show(links)}`)
    const matched = new Set()
    for (const l of links) {
      check(l?.type === TYPE, `link type ${show(l?.type)}, want "${TYPE}": ${show(l)}`)
      check(typeof l.cid === 'string' && l.cid.length > 0, `link without a cid: ${show(l)}`)
      const { status, body } = await httpGet(`${node.base}/ipfs/${encodeURIComponent(l.cid)}`)
      check(status === 200, `GET /ipfs/${l.cid}: HTTP ${status} ${body.subarray(0, 200).toString()}`)
      const i = files.findIndex((f) => f.bytes.equals(body))
      check(i >= 0, `GET /ipfs/${l.cid}: ${body.length} bytes matching no uploaded file`)
      check(l.cid === files[i].cid, `cid ${l.cid} of file${i + 1}, want CIDv1 raw sha2-256 ${files[i].cid}`)
      matched.add(i)
    }
    check(matched.size === files.length, `links cover files ${[...matched].map((i) => i + 1)} only`)
    return { detail: show(links) }
  })

  // ---- 6. history
  await step('history', ['quotePaths'], async () => {
    const h = await client.getHistory(1, 10, TYPE)
    check(h && Array.isArray(h.data), `getHistory gave ${show(h)}, want {data: [...]}`)
    check(h.data.length <= 10, `${h.data.length} entries for pageSize 10`)
    const e = h.data.find((x) => x?.quoteId === quote.quoteId)
    check(e, `quote ${quote.quoteId} not in ${show(h)}`)
    if (qSizes) check(h.data.some((x) => x?.quoteId === qSizes.quoteId), `quote ${qSizes.quoteId} not in ${show(h)}`)
    return { detail: `type ${show(h.type)}, maxPages ${show(h.maxPages)}, ${h.data.length} entries; ours: ${show(e)}` }
  })

  // ---- 7. balances
  await step('balances', ['upload'], async () => {
    const amount = BigInt(quote.tokenAmount)
    const after = {
      user: await chain.token.balanceOf(user.address),
      payee: await chain.token.balanceOf(payeeAddr),
    }
    const left = await chain.token.allowance(user.address, payeeAddr)
    check(before.user - after.user === amount, `user paid ${before.user - after.user}, want ${amount}`)
    check(after.payee - before.payee === amount, `payee got ${after.payee - before.payee}, want ${amount}`)
    check(left === 0n, `allowance left ${left}, want 0 (the client approved exactly tokenAmount)`)
    return { detail: `user ${before.user} → ${after.user}, payee ${before.payee} → ${after.payee}` }
  })
}

// Waits ms, failing if the child exits meanwhile.
async function sleepUnlessExit(child, ms) {
  await sleep(ms)
  if (child.exited || child.error) {
    throw new StepError(`${child.name} exited early: ${child.error?.message ?? ''}${tail(child.log)}`)
  }
}

// ----------------------------------------------------------- exit handling

let finishing = false
async function finish(code) {
  if (finishing) return
  finishing = true
  for (const [key] of STEPS) if (!results.has(key)) record(key, false, 'not run')
  if ([...results.values()].some((r) => !r.ok)) {
    for (const c of children) console.log(`--- last lines of ${c.name}.log:${tail(c.log, 20)}`)
  }
  await cleanup()
  const failed = summary()
  process.exit(code ?? (failed > 0 ? 1 : 0))
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    console.log(`interrupted by ${sig}`)
    finish(130)
  })
}
process.on('unhandledRejection', (err) => {
  console.log(`unhandled rejection: ${describe(err)}`)
  finish(1)
})
process.on('uncaughtException', (err) => {
  console.log(`uncaught exception: ${err?.stack ?? err}`)
  finish(1)
})
// Last resort if the children die hard: kill them synchronously on exit.
process.on('exit', () => {
  for (const c of children) if (!c.exited) c.proc.kill('SIGKILL')
})

const overall = setTimeout(() => {
  console.log(`overall deadline of ${TOTAL_DEADLINE_MS / 1000} s passed`)
  finish(1)
}, TOTAL_DEADLINE_MS)
overall.unref()

try {
  await main()
} catch (err) {
  console.log(`harness error: ${err?.stack ?? err}`)
}
await finish()
