package actors

// Stable log event names. Dashboards and alerts key on these strings.
const (
	eventActorFailed     = "actor.failed"
	eventTokenCreated    = "token.created"
	eventTokenDeleted    = "token.deleted"
	eventTokenDenied     = "token.denied"
	eventContractsIssued = "contracts.issued"
	eventContractClosed  = "contract.closed"
	eventCommitFailed    = "snapshot.commit_failed"
	eventRecovered       = "engine.recovered"
	eventRecordSkipped   = "engine.record_skipped"
	eventQuoteStatus     = "quote.status"
	eventQuotePayment    = "quote.payment"
	eventQuoteStorage    = "quote.storage"
)
