// Package persistence defines how fanflow keeps order snapshots: the Store
// interface every backend implements, its sentinel errors, and the group
// committer that batches snapshot writes from many orders.
//
// Backends live in sub-packages (memory, embedded, redisstore) and all pass
// the conformance suite in storetest.
package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fanflow/fanflow/order"
)

// Sentinel errors. Backends wrap them with the order id.
var (
	// ErrNotFound: no order with that id is stored (or it has expired).
	ErrNotFound = errors.New("persistence: not found")
	// ErrStale: a write carried a version that is not newer than the stored one.
	ErrStale = errors.New("persistence: stale version")
	// ErrUnavailable: the store cannot be reached; the write may be retried.
	ErrUnavailable = errors.New("persistence: store unavailable")
	// ErrClosed: the store or committer has been closed.
	ErrClosed = errors.New("persistence: closed")
	// ErrBadCursor: a listing cursor could not be decoded.
	ErrBadCursor = errors.New("persistence: bad cursor")
)

// Record is one order's snapshot as a store keeps it. Data is the order's
// JSON (order.Order); the other fields are copied out of it so that stores can
// index without decoding.
type Record struct {
	OrderID   string
	Version   uint64
	Status    order.Status
	CreatedAt time.Time
	// Deadline scores the active index while Status is Running.
	Deadline time.Time
	// ExpireAt is when a finished order may be forgotten; zero means never.
	ExpireAt time.Time
	// Data is the snapshot's JSON. Stores keep it verbatim.
	Data []byte
}

// StaleError reports the records of a batch that were not written because
// the store already held the same or a newer version. The rest of the batch
// was written. errors.Is(err, ErrStale) holds.
type StaleError struct {
	OrderIDs []string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%v: %s", ErrStale, strings.Join(e.OrderIDs, ", "))
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// Query selects a page of orders for listing, newest (by creation) first.
type Query struct {
	// Status filters by order status; zero means any status.
	Status order.Status
	// Limit is the page size; values < 1 mean 100.
	Limit int
	// Cursor continues a previous page (Page.Next); empty starts at the newest.
	Cursor string
}

// Page is one page of a listing.
type Page struct {
	Records []Record
	// Next is the cursor of the following page; empty when there is none.
	Next string
}

// Store keeps order snapshots. Implementations are safe for concurrent use.
type Store interface {
	// Save writes a batch of snapshots, atomically per record, as one round
	// trip or transaction where the backend allows. A record whose version is
	// not newer than the stored one is skipped and reported in a *StaleError;
	// the others are written. Any other error means nothing may be assumed
	// written (errors.Is(err, ErrUnavailable) when the backend is down).
	// A batch holds at most one record per order.
	Save(ctx context.Context, batch []Record) error
	// Load returns the stored snapshot of one order, or ErrNotFound.
	Load(ctx context.Context, orderID string) (Record, error)
	// LoadMany returns the stored snapshots of several orders, in the order
	// of orderIDs, as one round trip or transaction where the backend
	// allows: recovery loads the running orders this way. An id that is not
	// stored (or has expired) is left out, and is no error; a repeated id
	// is returned once per mention. No ids is no records. An error means
	// none of the records may be trusted.
	LoadMany(ctx context.Context, orderIDs []string) ([]Record, error)
	// List returns one page of orders, newest first, optionally by status.
	List(ctx context.Context, q Query) (Page, error)
	// Active calls fn for every running order with its deadline, in
	// deadline order, until fn returns an error, which Active returns.
	Active(ctx context.Context, fn func(orderID string, deadline time.Time) error) error
	// Expire forgets finished orders whose ExpireAt is not after now and
	// returns how many it removed. Backends with native expiry may do nothing.
	// Backends without it also delete the claims (see Claim) whose expiry is
	// not after now; those are not counted.
	Expire(ctx context.Context, now time.Time) (int, error)
	// Claim stores value under key unless key already holds a value that has
	// not expired, and returns the value key holds afterwards and whether this
	// call stored it. ttl > 0 makes the value expire after ttl; 0 keeps it.
	// Concurrent claims of one key: exactly one wins; every caller gets the winner's value.
	//
	// Claiming a key again with the value it already holds does not win and
	// does not extend its ttl. Give each claimant its own value (e.g. with a
	// random token) so that held equal to value means "mine": a client that
	// retries after a lost reply may see won false for its own claim.
	// A negative ttl or an empty key is an error. Claims live apart from
	// orders; errors name the key, never the value.
	Claim(ctx context.Context, key string, value []byte, ttl time.Duration) (held []byte, won bool, err error)
	// Release deletes key if it holds value (a winner whose work failed gives
	// the key back); otherwise it does nothing.
	Release(ctx context.Context, key string, value []byte) error
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// RecordOf builds the Record for an order snapshot whose JSON is data.
// retention is how long a finished order is kept (zero keeps it forever).
func RecordOf(o *order.Order, data []byte, retention time.Duration) Record {
	r := Record{
		OrderID:   o.OrderID,
		Version:   o.Version,
		Status:    o.Status,
		CreatedAt: o.CreatedAt,
		Deadline:  o.Deadline,
		Data:      data,
	}
	if o.Status.Terminal() && retention > 0 {
		at := o.UpdatedAt
		if o.CompletedAt != nil {
			at = *o.CompletedAt
		}
		r.ExpireAt = at.Add(retention)
	}
	return r
}
