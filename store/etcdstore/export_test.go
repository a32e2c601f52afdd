package etcdstore

import (
	"encoding/json"
)

// ChunkOf is the pending chunk db would write for b (for tests that leave
// a batch half written, as a leader dying mid-way would).
func ChunkOf(db *DB, b Batch) (string, error) {
	ops, err := db.ops(b)
	if err != nil {
		return "", err
	}
	blob, err := json.Marshal(ops)
	return string(blob), err
}
