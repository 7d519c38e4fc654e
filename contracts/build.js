// Compiles SluiceToken.sol with solc-js (the exact version pinned in
// package.json) and writes the artifacts the Go package embeds:
//   SluiceToken.abi.json  the ABI
//   SluiceToken.bin       the creation bytecode, hex without 0x
// Run: npm install && npm run build
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const name = 'SluiceToken';
const source = fs.readFileSync(path.join(__dirname, `${name}.sol`), 'utf8');

const input = {
  language: 'Solidity',
  sources: { [`${name}.sol`]: { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // Cancun runs on the chains Sluice targets and on go-ethereum's
    // simulated backend; pinning it keeps the bytecode stable across solc
    // defaults.
    evmVersion: 'shanghai',
    // No metadata hash: the bytecode then depends only on the source and
    // these settings, so rebuilding gives byte-identical artifacts.
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) {
  console.error(e.formattedMessage);
}
if (errors.length > 0) {
  process.exit(1);
}

const contract = output.contracts[`${name}.sol`][name];
fs.writeFileSync(path.join(__dirname, `${name}.abi.json`), JSON.stringify(contract.abi, null, 2) + '\n');
fs.writeFileSync(path.join(__dirname, `${name}.bin`), contract.evm.bytecode.object + '\n');
console.log(`solc ${solc.version()}: wrote ${name}.abi.json and ${name}.bin (${contract.evm.bytecode.object.length / 2} bytes)`);
