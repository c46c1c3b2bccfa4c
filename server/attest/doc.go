// Package attest is signet's attestation store: attestation transparency on
// top of the Rekor v2 log.
//
// Rekor v2 stopped storing whole attestations; it logs only what a verifier
// needs. signet keeps them. A client POSTs a whole in-toto DSSE envelope with
// the signer's certificate (or key). The store validates it, logs it the way
// cosign v3 and sigstore-js do, as a hashedrekord v0.0.2 over the DSSE
// pre-authentication encoding (digest = hash of PAE(payloadType, payload),
// signature = the DSSE signature, verifier = the signer's certificate or
// key), so the returned TransparencyLogEntry goes into a standard bundle and
// every standard verifier accepts it. It then keeps the envelope linked to
// that entry and answers queries by subject digest, predicate type and signer
// identity.
//
// # Validation before logging
//
// Nothing reaches the log unless the envelope is an in-toto Statement (v1, or
// v0.1 for older clients) with subjects that carry digests and a predicate
// type, has exactly one signature, and that signature verifies over the PAE
// with the verifier under its keyDetails. Invalid input therefore leaves no
// log entry and no record.
//
// # Duplicates
//
// Rekor answers a duplicate entry with 409 Conflict and a pointer to the
// existing entry (v1: Location header; v2: ALREADY_EXISTS plus the existing
// index). The store does the same: an attestation is identified by its log
// entry content (PAE digest, signature, verifier), so resubmitting it answers
// 409 with a Location header naming the stored attestation, and logs nothing.
//
// # Crash window between "logged" and "stored"
//
// The log append and the database write cannot be one transaction. The store
// never writes a record before the log has returned its entry, so there is
// never a record without a log entry. The reverse, a log entry whose envelope
// was never stored, is possible if the process dies (or the database write
// fails) after the append. That is harmless for verification: such an entry
// is exactly what plain Rekor v2 holds for every attestation. To make it
// visible and recoverable, the store writes a "pending" marker before the
// append and removes it in the same transaction that stores the record; at
// start-up remaining markers are reported (log warning and the
// signet_attestations_pending gauge), and resubmitting the same envelope logs
// it again and completes the record. A marker is also kept when the log fails
// in a way that leaves it unknown whether the entry was appended (timeouts,
// server errors); it is removed when the log rejected the entry outright,
// or the TSA failed before the append.
//
// # Timestamps and bundles
//
// Rekor v2 entries carry no integrated time, so a bundle proves when its
// short-lived certificate signed only by an RFC 3161 timestamp. With
// Options.Timestamp set (the server's own TSA, in process) the store
// timestamps the envelope's signature as a Sigstore client does (SHA-256 of
// the signature bytes) and keeps the token with the record, so that
// GET /api/v2/attestations/{id}/bundle can answer a whole Sigstore bundle
// v0.3 that verifies offline against the server's trusted root: a user who
// has only a digest finds the attestation by a query and fetches its
// bundle, as with `gh attestation verify`.
//
// The order at submission is: validate (signature, signer chain), mark the
// append pending (refusing a stored duplicate), timestamp, append to the
// log, store the record and clear the marker in one transaction. The
// timestamp comes before the append because a log entry cannot be taken
// back: a TSA failure (503) removes the marker this request wrote and
// leaves no log entry and no record. A timestamp outside the signing
// certificate's validity (an attestation submitted after its certificate
// expired) would convince no verifier; the record is then stored without
// one, as records stored before timestamps were, and its bundle is the one
// the signer wrote.
//
// # Signer identity
//
// The identity indexed is the certificate's subject alternative name and the
// OIDC issuer from the Fulcio extensions. When Options.Roots is set the
// certificate must chain to those roots (signet's CA), so the identity index
// cannot be polluted with self-made certificates. Without Roots, identities
// are indexed as the certificate claims them. Either way a client verifies
// what it gets back (envelope + certificate + entry make a Sigstore bundle),
// as with any Sigstore lookup.
//
// # HTTP API
//
//	POST /api/v2/attestations       {"envelope": <DSSE>, "verifier": <Rekor v2 Verifier>}
//	                                → 201 {"attestationId", "transparencyLogEntry"}
//	GET  /api/v2/attestations?digest=sha256:<hex>&predicateType=&identity=&issuer=&pageSize=&pageToken=
//	                                → 200 {"attestations": [...], "nextPageToken"}
//	GET  /api/v2/attestations/{id}  → 200 one attestation
//	GET  /api/v2/attestations/{id}/bundle
//	                                → 200 its Sigstore bundle v0.3 (404 if it was stored without a timestamp)
//
// Queries need a digest, predicateType or identity; results come newest
// first (the most recently stored attestation first). A page token
// continues below the page it ended, so it stays valid while new
// attestations arrive; those are found by a fresh query.
//
// # Storage
//
// Either one bbolt file (Options.Path), the store of a single server:
// records are keyed by id; index buckets map (value, sequence) to ids,
// written in the same transaction as the record; a watermark file beside
// it (.used) catches an older or damaged copy, and Snapshot backs it up.
//
// Or a MySQL-compatible database (Options.DSN) that replicas behind a load
// balancer share, so that an attestation stored through one is found
// through every other and no replica keeps state: the same records and
// index in SignetAttestation* tables, an AUTO_INCREMENT sequence as the
// page cursor, and the pending markers in a table too. A marker is also a
// claim: the replica that writes it holds the attestation for as long as
// one submission can take, so the same envelope sent to two replicas at
// once is appended once (the other is answered 409, as within one
// server). A claim whose append failed is released at once; one a
// replica died holding expires. A database that does not answer is a
// 503 that changes nothing. Its backups are the database's own
// (mysqldump, mariabackup, RDS/Aurora snapshots); there is no Snapshot or
// watermark. Its max_allowed_packet must take the largest record (see
// checkPacket), and an attestation whose record would not fit anyway (a
// statement of very many subjects) is refused before it is logged.
package attest
