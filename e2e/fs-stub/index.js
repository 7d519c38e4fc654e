// Never loaded: Node resolves 'fs' to its built-in module. Exists only so
// that npm can satisfy @oceanprotocol/uploader's dependency on the registry
// placeholder package fs@0.0.1-security.
module.exports = {}
