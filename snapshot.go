package sluice

// Kind of a snapshot record.
type RecordKind uint8

const (
	// KindToken: a farmer token's snapshot; ID is the farmer id.
	KindToken RecordKind = 1
	// KindContract: a contract's snapshot; ID is ContractID(farmer, file hash),
	// Owner the farmer id.
	KindContract RecordKind = 2
	// KindWhitelist: an address allowed to farm; ID is the address, State
	// its balance as decimal text. Archived when a new list drops it.
	KindWhitelist RecordKind = 3
	// KindSignature: a signed token request already used; ID is
	// SignatureID(address, message). Kept forever so it cannot be replayed.
	KindSignature RecordKind = 4
	// KindMeta: node-wide settings kept in the store (ID names them).
	KindMeta RecordKind = 5
	// KindStorage: a registered storage microservice; ID is its type.
	KindStorage RecordKind = 6
	// KindQuote: an upload quote; ID is the quote id, Owner the user.
	KindQuote RecordKind = 7
	// KindNonce: a user's signed-request nonce state; ID is the address
	// in lower case.
	KindNonce RecordKind = 8
)

func (k RecordKind) String() string {
	switch k {
	case KindToken:
		return "token"
	case KindContract:
		return "contract"
	case KindWhitelist:
		return "whitelist"
	case KindSignature:
		return "signature"
	case KindMeta:
		return "meta"
	case KindStorage:
		return "storage"
	case KindQuote:
		return "quote"
	case KindNonce:
		return "nonce"
	}
	return "unknown"
}

// Record is one entity's snapshot as the stores keep it: opaque state bytes
// plus the few columns the stores need to load and archive. Stores never
// look inside State.
type Record struct {
	Kind  RecordKind
	ID    string
	Owner string // the owning farmer id for contracts, "" for tokens
	// Version grows by one with every change of the entity. A store ignores
	// a write whose version is not newer than what it holds, so retried and
	// reordered writes are harmless.
	Version uint64
	// Live records are loaded at start-up; archived ones (Live false) are
	// kept only to answer questions about them ("contract expired").
	Live  bool
	State []byte
}
