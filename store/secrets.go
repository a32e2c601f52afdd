package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SecretKeyFile is the name of the file that holds the key secrets are
// sealed with. It lives in the dispatcher's credentials directory, never in
// the data directory beside volt.db: a copy of the database alone (a backup,
// a support bundle) reveals no secret.
const SecretKeyFile = "secrets.key"

// secretKeySize is the key's length: AES-256.
const secretKeySize = 32

// ErrSecretKey marks a secret that cannot be opened with the key at hand:
// it was sealed with another key, or its row was changed (moved to another
// name, repository or branch binding, or corrupted).
var ErrSecretKey = errors.New("cannot open the secret with this key")

// SecretKey seals and opens secret values with AES-256-GCM. The additional
// data binds each sealed value to its name, repository and branch patterns,
// so that a row copied or edited in the database does not open.
type SecretKey struct {
	path string
	id   string // hex of the first 8 bytes of the key's SHA-256
	aead cipher.AEAD
}

// ID names the key without revealing it: stored with every sealed value,
// so that a value sealed with another key is told apart from a damaged one.
func (k *SecretKey) ID() string { return k.id }

// Path is the key file.
func (k *SecretKey) Path() string { return k.path }

// OpenSecretKey reads the key file at path. A missing file is an error
// wrapping fs.ErrNotExist; a file that other users may read, or that is not
// exactly 32 bytes, is refused with what to do.
func OpenSecretKey(path string) (*SecretKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open the secrets key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open the secrets key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("the secrets key %s may be read by other users (mode %04o): run `chmod 600 %s`", path, perm, path)
	}
	key, err := io.ReadAll(io.LimitReader(f, secretKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("read the secrets key %s: %w", path, err)
	}
	if len(key) != secretKeySize {
		return nil, fmt.Errorf("the secrets key %s is not %d bytes: restore it from a backup (or remove it and set every secret again)", path, secretKeySize)
	}
	return newSecretKey(path, key)
}

// CreateSecretKey opens the key file at path, creating it (mode 0600, 32
// random bytes) when there is none. Creation is atomic: of two processes
// creating it at once, both end up with the same key.
func CreateSecretKey(path string) (*SecretKey, error) {
	k, err := OpenSecretKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	key := make([]byte, secretKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make a secrets key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets.key-*")
	if err != nil {
		return nil, fmt.Errorf("create the secrets key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create the secrets key %s: %w", path, err)
	}
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create the secrets key %s: %w", path, err)
	}
	// A link never replaces an existing file: if another process made the
	// key meanwhile, use that one.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create the secrets key %s: %w", path, err)
	}
	return OpenSecretKey(path)
}

func newSecretKey(path string, key []byte) (*SecretKey, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	sum := sha256.Sum256(key)
	return &SecretKey{path: path, id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// secretAAD is the additional data a value is sealed with: its name,
// repository and branch patterns, unambiguously encoded.
func secretAAD(name, repo string, branches []string) []byte {
	b, err := json.Marshal([]any{"volt secret v1", name, repo, branches})
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return b
}

// seal encrypts value under a fresh random nonce: nonce || ciphertext.
func (k *SecretKey) seal(name, repo string, branches []string, value []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(value)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Errorf("read random bytes: %w", err)) // crypto/rand never fails on Linux
	}
	return k.aead.Seal(nonce, nonce, value, secretAAD(name, repo, branches))
}

// Open decrypts a secret loaded by Secrets. It fails with ErrSecretKey when
// the value was sealed with another key or its row was changed.
func (k *SecretKey) Open(s Secret) ([]byte, error) {
	if s.keyID != k.id {
		return nil, fmt.Errorf("secret %s of %s was sealed with key %s, and %s is key %s: restore the key file it was set with, or set the secret again: %w",
			s.Name, s.Repo, s.keyID, k.path, k.id, ErrSecretKey)
	}
	n := k.aead.NonceSize()
	if len(s.sealed) < n {
		return nil, fmt.Errorf("secret %s of %s is damaged: set it again: %w", s.Name, s.Repo, ErrSecretKey)
	}
	value, err := k.aead.Open(nil, s.sealed[:n], s.sealed[n:], secretAAD(s.Name, s.Repo, s.Branches))
	if err != nil {
		return nil, fmt.Errorf("secret %s of %s does not open (its row was changed or damaged): set it again: %w", s.Name, s.Repo, ErrSecretKey)
	}
	return value, nil
}

// Secret is a stored secret: its binding in the clear, its value sealed
// (Open it with the SecretKey).
type Secret struct {
	// Name is the environment variable a job sees it as.
	Name string
	// Repo is the repository it serves: the name Volt shows or its URL.
	Repo string
	// Branches are the branch patterns it serves; empty means every branch.
	Branches []string
	// UpdatedUnixMs is when it was last set.
	UpdatedUnixMs int64

	keyID  string
	sealed []byte
}

// SetSecret seals value with k and stores it as the secret name of repo,
// serving branches (empty: all), replacing any secret of that name and
// repository.
func (db *DB) SetSecret(k *SecretKey, name, repo string, branches []string, value []byte, now time.Time) error {
	if err := db.writable("set a secret"); err != nil {
		return err
	}
	if name == "" || repo == "" {
		return fmt.Errorf("set a secret: a secret needs a name and a repository")
	}
	if branches == nil {
		branches = []string{}
	}
	pats, err := json.Marshal(branches)
	if err != nil {
		return fmt.Errorf("set secret %s: %w", name, err)
	}
	sealed := k.seal(name, repo, branches, value)
	_, err = db.sql.ExecContext(context.Background(), `
INSERT INTO secrets (name, repo, branches, key_id, sealed, updated_unix_ms) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (name, repo) DO UPDATE SET branches = excluded.branches, key_id = excluded.key_id,
	sealed = excluded.sealed, updated_unix_ms = excluded.updated_unix_ms`,
		name, repo, string(pats), k.id, sealed, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("set secret %s of %s in %s: %w", name, repo, db.path(), err)
	}
	return nil
}

// DeleteSecret removes the secret name of repo; found is false when there
// was none.
func (db *DB) DeleteSecret(name, repo string) (found bool, err error) {
	if err := db.writable("delete a secret"); err != nil {
		return false, err
	}
	res, err := db.sql.ExecContext(context.Background(), `DELETE FROM secrets WHERE name = ? AND repo = ?`, name, repo)
	if err != nil {
		return false, fmt.Errorf("delete secret %s of %s in %s: %w", name, repo, db.path(), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete secret %s of %s in %s: %w", name, repo, db.path(), err)
	}
	return n > 0, nil
}

// Secrets returns the stored secrets of the given names, for every
// repository, sorted by name and repository; their values stay sealed.
func (db *DB) Secrets(names []string) ([]Secret, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	q := `SELECT name, repo, branches, key_id, sealed, updated_unix_ms FROM secrets WHERE name IN (?` +
		strings.Repeat(", ?", len(names)-1) + `) ORDER BY name, repo`
	return db.secrets(q, args...)
}

// ListSecrets returns every stored secret, sorted by name and repository;
// their values stay sealed.
func (db *DB) ListSecrets() ([]Secret, error) {
	return db.secrets(`SELECT name, repo, branches, key_id, sealed, updated_unix_ms FROM secrets ORDER BY name, repo`)
}

func (db *DB) secrets(query string, args ...any) (out []Secret, err error) {
	rows, err := db.sql.QueryContext(context.Background(), query, args...)
	if err != nil {
		return nil, fmt.Errorf("read secrets from %s: %w", db.path(), err)
	}
	defer func() {
		if cerr := rows.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("read secrets from %s: %w", db.path(), cerr)
		}
	}()
	for rows.Next() {
		var s Secret
		var pats string
		if err := rows.Scan(&s.Name, &s.Repo, &pats, &s.keyID, &s.sealed, &s.UpdatedUnixMs); err != nil {
			return nil, fmt.Errorf("read secrets from %s: %w", db.path(), err)
		}
		if err := json.Unmarshal([]byte(pats), &s.Branches); err != nil {
			return nil, fmt.Errorf("read secret %s of %s from %s: branches: %w", s.Name, s.Repo, db.path(), err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read secrets from %s: %w", db.path(), err)
	}
	return out, nil
}

// Seal seals value as the secret name of repo, serving branches, for a
// store that keeps secrets elsewhere (a failover group's etcd): the same
// sealing SetSecret does.
func (k *SecretKey) Seal(name, repo string, branches []string, value []byte, now time.Time) Secret {
	if branches == nil {
		branches = []string{}
	}
	return Secret{Name: name, Repo: repo, Branches: slices.Clone(branches), UpdatedUnixMs: now.UnixMilli(),
		keyID: k.id, sealed: k.seal(name, repo, branches, value)}
}

// SealedSecret is a Secret as another store keeps it: its binding, and
// its value still sealed, with the id of the key that sealed it.
type SealedSecret struct {
	Name          string   `json:"name"`
	Repo          string   `json:"repo"`
	Branches      []string `json:"branches"`
	UpdatedUnixMs int64    `json:"updated_unix_ms"`
	KeyID         string   `json:"key_id"`
	Sealed        []byte   `json:"sealed"`
}

// Sealed is s as another store keeps it.
func (s Secret) Sealed() SealedSecret {
	return SealedSecret{Name: s.Name, Repo: s.Repo, Branches: s.Branches, UpdatedUnixMs: s.UpdatedUnixMs, KeyID: s.keyID, Sealed: s.sealed}
}

// Secret is the stored secret s describes (Open it with the SecretKey).
func (s SealedSecret) Secret() Secret {
	return Secret{Name: s.Name, Repo: s.Repo, Branches: s.Branches, UpdatedUnixMs: s.UpdatedUnixMs, keyID: s.KeyID, sealed: s.Sealed}
}

// PutSecret stores a secret sealed already (Seal), replacing any of that
// name and repository.
func (db *DB) PutSecret(s Secret) error {
	if err := db.writable("set a secret"); err != nil {
		return err
	}
	pats, err := json.Marshal(s.Branches)
	if err != nil {
		return fmt.Errorf("set secret %s: %w", s.Name, err)
	}
	_, err = db.sql.ExecContext(context.Background(), `
INSERT INTO secrets (name, repo, branches, key_id, sealed, updated_unix_ms) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (name, repo) DO UPDATE SET branches = excluded.branches, key_id = excluded.key_id,
	sealed = excluded.sealed, updated_unix_ms = excluded.updated_unix_ms`,
		s.Name, s.Repo, string(pats), s.keyID, s.sealed, s.UpdatedUnixMs)
	if err != nil {
		return fmt.Errorf("set secret %s of %s in %s: %w", s.Name, s.Repo, db.path(), err)
	}
	return nil
}
